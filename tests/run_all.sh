#!/usr/bin/env bash
# run_all.sh - runs test programs and adds up their "N passed, N failed" lines.
# Each argument is an executable (a C test or a shell script). A program that
# crashes or exits non-zero without a summary line counts as one failure.
set -u
passed=0 failed=0 skipped=0
start=$(date +%s)
for t in "$@"; do
    t0=$(date +%s)
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E 'FAIL|SKIPPED|skipped|vs torch|images/s|tokens/s|executions|learning:' | head -40
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20
        echo "$t: no summary line (exit code $rc): counted as 1 failure"
        failed=$((failed + 1))
        continue
    fi
    p=$(printf '%s' "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    f=$(printf '%s' "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    s=$(printf '%s' "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || true)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$t: exit code $rc with no failed check: counted as 1 failure"
        f=1
    fi
    echo "$(basename "$t"): $p passed, $f failed$( [ -n "$s" ] && echo ", $s skipped") ($(( $(date +%s) - t0 ))s)"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + ${s:-0}))
done
echo "total time $(( $(date +%s) - start ))s"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
