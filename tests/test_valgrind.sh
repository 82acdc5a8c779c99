#!/usr/bin/env bash
# test_valgrind.sh - valgrind memcheck on short training runs of the CPU build:
# no invalid access, no definite or indirect leak. One OpenMP thread (the
# runtime's thread pool is not a leak, but its stacks confuse memcheck).
set -u
cd "$(dirname "$0")/.."
BIN=${TRAIN_GPT_CPU:-build/cpu/bin/train_gpt}
OUT=tests/out/valgrind
rm -rf "$OUT"; mkdir -p "$OUT"
passed=0 failed=0
if ! command -v valgrind >/dev/null; then
    echo "SKIPPED: valgrind is not installed: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
run() {
    local what=$1; shift
    OMP_NUM_THREADS=1 valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        "$@" > "$OUT/$what.log" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL valgrind $what (exit $rc):"; grep -E '==[0-9]+==' "$OUT/$what.log" | head -20
    fi
}
TINY=(--layers=1 --heads=2 --embd=16 --seq=8 --batch=2 --mqar-keys=4 --mqar-pairs=2 --eval-batches=1
      --eval-every=2 --device=cpu)
run gpt_train "$BIN" "${TINY[@]}" --steps=3 --save-every=2 --out="$OUT/gpt"
run gpt_resume "$BIN" --resume="$OUT/gpt" --steps=5
run gpt_setadam_x "$BIN" "${TINY[@]}" --steps=2 --optim=setadam --attn=x --out="$OUT/gptx"
echo "test_valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
