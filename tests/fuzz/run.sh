#!/usr/bin/env bash
# run.sh - builds the libFuzzer harnesses (clang, with AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs each for a bounded time from its
# committed seed corpus; then replays every input under regressions/ (crashes
# found earlier, kept as regression tests). Prints executions per harness.
#   tests/fuzz/run.sh [SECONDS_PER_HARNESS]      (a time cap; default $FUZZ_SECONDS or 90)
set -u
cd "$(dirname "$0")/../.."
seconds=${1:-${FUZZ_SECONDS:-90}}
out=build/fuzz
mkdir -p "$out"
passed=0 failed=0
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null; then
    echo "SKIPPED: clang not found (apt-get install clang libclang-rt-dev): 0 passed, 0 failed, 1 skipped"
    exit 0
fi
FLAGS="-std=c11 -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wno-unknown-pragmas"
# A fixed seed and a fixed number of runs per harness (about 50 s each on the
# CI machine) make every CI run the same search, so a result reproduces; set
# FUZZ_SEED or FUZZ_SCALE (a multiplier on the runs) to search further.
seed=${FUZZ_SEED:-1}
scale=${FUZZ_SCALE:-1}
declare -A RUNS=([tokens]=12000 [ckpt]=250000 [config]=350000 [images]=100000 [tokenizer]=250000 [weights]=60000)
declare -A SOURCES=(
    [tokens]="src/tokens.c src/common.c"
    [ckpt]="src/ckpt.c src/gpt.c src/params.c src/layer_stats.c src/attn_config.c src/common.c layers.c attention.c variants.c"
    [config]="src/flags.c src/common.c"
    [images]="src/images.c src/common.c"
    [tokenizer]="src/tokenizer.c src/unicode_tables.c src/common.c"
    [weights]="src/gpt_weights.c src/safetensors.c src/gpt.c src/params.c src/layer_stats.c src/attn_config.c src/common.c layers.c attention.c variants.c"
)
for name in tokens ckpt config images tokenizer weights; do
    bin=$out/fuzz_$name
    # shellcheck disable=SC2086
    if ! $CLANG $FLAGS tests/fuzz/fuzz_$name.c ${SOURCES[$name]} -o "$bin" -lz -lm 2> "$out/$name.build.log"; then
        echo "FAIL fuzz_$name: does not build"; cat "$out/$name.build.log" | head -20
        failed=$((failed + 1)); continue
    fi
    work=$out/corpus_$name
    rm -rf "$work"; mkdir -p "$work"
    cp tests/fuzz/corpus/$name/* "$work/"
    log=$out/$name.log
    # die() in these parsers ends the process; the harness jumps back instead,
    # so what the error path holds is not a leak of the real program
    leaks=1
    case $name in tokens|config|weights) leaks=0 ;; esac
    ASAN_OPTIONS=detect_leaks=$leaks "$bin" -detect_leaks=$leaks -seed="$seed" \
        -runs=$((RUNS[$name] * scale)) -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/crash-$name-" "$work" > "$log" 2>&1
    rc=$?
    execs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || true)
    [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz_$name: ${execs:-?} executions (seed $seed, at most ${seconds}s), no crash"
    else
        failed=$((failed + 1))
        echo "FAIL fuzz_$name: exit $rc after ${execs:-?} executions; crash inputs in $out (add them to tests/fuzz/regressions/$name/)"
        grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -10
    fi
    # earlier crashes, replayed
    if [ -d tests/fuzz/regressions/$name ] && ls tests/fuzz/regressions/$name/* >/dev/null 2>&1; then
        if "$bin" tests/fuzz/regressions/$name/* > "$out/$name.regressions.log" 2>&1; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1)); echo "FAIL fuzz_$name: a regression input crashes again"
        fi
    fi
done
echo "test_fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
