#!/usr/bin/env bash
# test_valgrind.sh - valgrind memcheck on short training runs of the CPU build:
# no invalid access, no definite or indirect leak. One OpenMP thread (the
# runtime's thread pool is not a leak, but its stacks confuse memcheck).
set -u
cd "$(dirname "$0")/.."
BIN=${TRAIN_GPT_CPU:-build/valgrind/bin/train_gpt}
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
run gpt_ref "$BIN" "${TINY[@]}" --steps=2 --device=ref --out="$OUT/gptref"
# train_vit on a tiny IDX dataset (8x8 images)
python3 - "$OUT/idx" <<'PY'
import os, random, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True); r = random.Random(1)
for split, n in (("train", 12), ("t10k", 6)):
    open(f"{d}/{split}-images-idx3-ubyte", "wb").write(
        struct.pack(">IIII", 0x803, n, 8, 8) + bytes(r.randrange(256) for _ in range(64 * n)))
    open(f"{d}/{split}-labels-idx1-ubyte", "wb").write(
        struct.pack(">II", 0x801, n) + bytes(r.randrange(10) for _ in range(n)))
PY
VIT=${TRAIN_VIT_CPU:-build/valgrind/bin/train_vit}
VTINY=(--dataset=mnist --data-dir="$OUT/idx" --patch=4 --dim=8 --depth=1 --heads=2 --mlp-dim=8
       --batch=5 --device=cpu --log-every=100)
run vit_train "$VIT" "${VTINY[@]}" --epochs=1 --save-every=1 --out="$OUT/vit"
run vit_resume "$VIT" --resume="$OUT/vit" --epochs=2
run vit_plain_x "$VIT" "${VTINY[@]}" --epochs=1 --model=vit --attn=x --randaug=2,14 --out="$OUT/vitx"
echo "test_valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
