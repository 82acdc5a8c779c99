#!/usr/bin/env bash
# test_mpi.sh - data parallelism (src/dist.h, src/zero.h) under mpirun: -np 2 against one
# process with the same global batch - train_gpt's losses over 30 steps (both
# optimizers, every attention kind, token data with gradient accumulation) and
# train_vit's over 2 epochs (dropout, RandAugment, a last batch of 4 split
# 2 + 2) equal to 1e-6 relative, with and without --zero=1 (sharded optimizer
# state); resume across process counts and sharding; a usage error
# and SIGTERM end the whole job. SKIPPED without mpirun or trainers built with MPI.
set -u
cd "$(dirname "$0")/.."
BIN=${TRAIN_GPT:-./train_gpt}
VIT=${TRAIN_VIT:-./train_vit}
OUT=tests/out/mpi
rm -rf "$OUT"
mkdir -p "$OUT"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL test_mpi: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
if ! command -v mpirun > /dev/null || ! ldd "$BIN" 2>/dev/null | grep -q libmpi ||
   ! ldd "$VIT" 2>/dev/null | grep -q libmpi; then
    echo "SKIPPED: data parallelism (no mpirun, or $BIN built without MPI): 0 passed, 0 failed, 1 skipped"
    exit 0
fi
# one thread per process: the machine's 2 cores, one each
export OMP_NUM_THREADS=1
LAUNCH=(mpirun -x OMP_NUM_THREADS --oversubscribe)
[ "$(id -u)" -eq 0 ] && LAUNCH+=(--allow-run-as-root)
MPI=("${LAUNCH[@]}" -np 2)
TINY=(--layers=2 --heads=2 --embd=32 --seq=16 --batch=8 --mqar-keys=8 --mqar-pairs=3
      --eval-every=10 --eval-batches=2 --log-every=100 --device=cpu)
# close CSV1 CSV2 COLUMNS TOL: the files' COLUMNS (cut -f, the first one the row
# key) in the same rows, every other cell within TOL relative
close() {
    paste -d, <(cut -d, -f"$3" "$1") <(cut -d, -f"$3" "$2") | awk -F, -v tol="$4" '
        { n = NF / 2; if ($1 != $(n + 1)) exit 1
          for (i = 2; i <= n; i++) { a = $i; b = $(n + i); if ((a == "") != (b == "")) exit 1
              d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a
              if (d > tol * (m > 1e-30 ? m : 1e-30)) exit 1 } }'
}
GPT_COLS=1,4,5,6,7   # metrics.csv: step; train and val loss, val acc, grad norm
VIT_COLS=1-7         # metrics.csv: epoch, step, lr; train loss and accuracy, val loss and accuracy
LAYER_COLS=1-6       # layers.csv: step, layer, disc, cos_yv, gamma, out_rms

# --- -np 2 equals one process -------------------------------------------------
python3 - "$OUT/tok.bin" <<'PY'
import random, struct, sys
r = random.Random(5)
toks = [r.randrange(50) for _ in range(6000)]
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(toks), *([0] * 253)))
    f.write(struct.pack(f"<{len(toks)}H", *toks))
PY
for variant in "adamw_std:--optim=adamw --attn=std" "setadam_x:--optim=setadam --attn=x" \
               "adamw_xsa_learn:--attn=xsa --gamma-learn=head" \
               "tok_accum:--data=$OUT/tok.bin --val-data=$OUT/tok.bin --vocab=50 --grad-accum=2 --attn=x"; do
    name=${variant%%:*}; flags=${variant#*:}
    # shellcheck disable=SC2086
    "$BIN" "${TINY[@]}" $flags --steps=30 --out="$OUT/one_$name" > /dev/null 2>&1
    # shellcheck disable=SC2086
    "${MPI[@]}" "$BIN" "${TINY[@]}" $flags --steps=30 --out="$OUT/two_$name" > "$OUT/two_$name.log" 2>&1
    check "-np 2 $name: exit code" [ $? -eq 0 ]
    check "-np 2 $name: says so" grep -q "^data parallel: 2 processes, 4 sequences each" "$OUT/two_$name.log"
    check "-np 2 $name: one console (rank 0's)" [ "$(grep -c '^final: ' "$OUT/two_$name.log")" -eq 1 ]
    check "-np 2 $name: losses, accuracy and grad norm within 1e-6 of one process" \
        close "$OUT/one_$name/metrics.csv" "$OUT/two_$name/metrics.csv" $GPT_COLS 1e-6
    # layers.csv: the whole batch's sums, so step 0 (the same weights) agrees to
    # 1e-6; later rows to 1e-3 (Adam turns the all-reduce's rounding in
    # near-zero gradients into updates of up to lr: seen 1.5e-4 on cos_yv)
    check "-np 2 $name: layers.csv at step 0 (the whole batch's) within 1e-6 of one process" \
        close <(grep '^0,' "$OUT/one_$name/layers.csv") <(grep '^0,' "$OUT/two_$name/layers.csv") $LAYER_COLS 1e-6
    check "-np 2 $name: layers.csv within 1e-3 of one process" \
        close "$OUT/one_$name/layers.csv" "$OUT/two_$name/layers.csv" $LAYER_COLS 1e-3
done

# --- --zero=1: the optimizer state sharded, the same steps ------------------------
for variant in "zero_adamw_xsa_learn:--attn=xsa --gamma-learn=head" "zero_setadam_x:--optim=setadam --attn=x" \
               "zero_adamw_std:--optim=adamw --attn=std"; do
    name=${variant%%:*}; flags=${variant#*:}
    # shellcheck disable=SC2086
    "$BIN" "${TINY[@]}" $flags --steps=30 --out="$OUT/one_$name" > /dev/null 2>&1
    # shellcheck disable=SC2086
    "${MPI[@]}" "$BIN" "${TINY[@]}" $flags --zero=1 --steps=30 --out="$OUT/two_$name" > "$OUT/two_$name.log" 2>&1
    check "-np 2 --zero=1 $name: exit code" [ $? -eq 0 ]
    check "-np 2 --zero=1 $name: says so" grep -q "^zero: optimizer state sharded" "$OUT/two_$name.log"
    check "-np 2 --zero=1 $name: losses, accuracy and grad norm within 1e-6 of one process" \
        close "$OUT/one_$name/metrics.csv" "$OUT/two_$name/metrics.csv" $GPT_COLS 1e-6
done
# a sharded run's checkpoint holds the whole state: it resumes in one process,
# and a one-process checkpoint resumes sharded
"$BIN" "${TINY[@]}" --optim=setadam --steps=16 --eval-every=4 --out="$OUT/zstraight" > /dev/null 2>&1
"${MPI[@]}" "$BIN" "${TINY[@]}" --optim=setadam --zero=1 --steps=8 --eval-every=4 --save-every=8 \
    --out="$OUT/z21" > /dev/null 2>&1
"$BIN" --resume="$OUT/z21" --steps=16 --zero=0 > "$OUT/z21.log" 2>&1
check "resume a --zero=1 run in one process: exit code" [ $? -eq 0 ]
check "resume a --zero=1 run in one process: equals the straight run" \
    close "$OUT/zstraight/metrics.csv" "$OUT/z21/metrics.csv" $GPT_COLS 1e-6
"$BIN" "${TINY[@]}" --optim=setadam --steps=8 --eval-every=4 --save-every=8 --out="$OUT/z12" > /dev/null 2>&1
"${MPI[@]}" "$BIN" --resume="$OUT/z12" --steps=16 --zero=1 > "$OUT/z12.log" 2>&1
check "resume a one-process run with --zero=1 under -np 2: exit code" [ $? -eq 0 ]
check "resume a one-process run with --zero=1 under -np 2: equals the straight run" \
    close "$OUT/zstraight/metrics.csv" "$OUT/z12/metrics.csv" $GPT_COLS 1e-6

# --- train_vit: -np 2 equals one process, dropout and augmentation included --
python3 tests/make_idx.py "$OUT/data"
VTINY=(--dataset=mnist --data-dir="$OUT/data" --patch=4 --dim=16 --depth=2 --heads=2 --mlp-dim=24
       --batch=32 --epochs=2 --lr=1e-3 --log-every=100 --device=cpu)
# (8 epochs of 4 steps: 32 steps; AdamW and SET-Adam, std, x and xsa, with and without --zero=1)
for variant in "small_setadam:--optim=setadam --dropout=0.1 --emb-dropout=0.1 --randaug=2,9" \
               "plain_xsa_learn:--model=vit --attn=xsa --gamma-learn=head --dropout=0.1 --crop=2" \
               "small_x_adamw:--optim=adamw --attn=x --wd=0.05 --dropout=0.1" \
               "small_zero_setadam:--optim=setadam --zero=1 --dropout=0.1 --randaug=2,9" \
               "small_zero_x_adamw:--optim=adamw --attn=x --zero=1 --dropout=0.1"; do
    name=${variant%%:*}; flags=${variant#*:}
    # shellcheck disable=SC2086
    "$VIT" "${VTINY[@]}" $flags --epochs=8 --out="$OUT/vone_$name" > /dev/null 2>&1
    # shellcheck disable=SC2086
    "${MPI[@]}" "$VIT" "${VTINY[@]}" $flags --epochs=8 --out="$OUT/vtwo_$name" > "$OUT/vtwo_$name.log" 2>&1
    check "vit -np 2 $name: exit code" [ $? -eq 0 ]
    check "vit -np 2 $name: says so" grep -q "^data parallel: 2 processes, 16 images each" "$OUT/vtwo_$name.log"
    check "vit -np 2 $name: losses and accuracies within 1e-6 of one process" \
        close "$OUT/vone_$name/metrics.csv" "$OUT/vtwo_$name/metrics.csv" $VIT_COLS 1e-6
    check "vit -np 2 $name: layers.csv within 1e-3 of one process" \
        close "$OUT/vone_$name/layers.csv" "$OUT/vtwo_$name/layers.csv" $LAYER_COLS 1e-3
done
# (stopped by --max-steps after the first epoch, so the cosine schedule is 8 epochs' in both)
"${MPI[@]}" "$VIT" "${VTINY[@]}" --epochs=8 --max-steps=4 --save-every=1 --optim=setadam --dropout=0.1 \
    --emb-dropout=0.1 --randaug=2,9 --out="$OUT/vr21" > /dev/null 2>&1
"$VIT" --resume="$OUT/vr21" --max-steps=0 > /dev/null 2>&1
check "vit: resume a -np 2 run in one process: exit code" [ $? -eq 0 ]
check "vit: resume a -np 2 run in one process: equals the straight run" \
    close "$OUT/vone_small_setadam/metrics.csv" "$OUT/vr21/metrics.csv" $VIT_COLS 1e-6

# --- resume across process counts: 8 + 8 steps equal 16 straight -------------
"$BIN" "${TINY[@]}" --optim=setadam --steps=16 --eval-every=4 --out="$OUT/straight" > /dev/null 2>&1
"$BIN" "${TINY[@]}" --optim=setadam --steps=8 --eval-every=4 --save-every=8 --out="$OUT/r12" > /dev/null 2>&1
"${MPI[@]}" "$BIN" --resume="$OUT/r12" --steps=16 > "$OUT/r12.log" 2>&1
check "resume a 1-process run under -np 2: exit code" [ $? -eq 0 ]
check "resume a 1-process run under -np 2: equals the straight run" close "$OUT/straight/metrics.csv" "$OUT/r12/metrics.csv" $GPT_COLS 1e-6
"${MPI[@]}" "$BIN" "${TINY[@]}" --optim=setadam --steps=8 --eval-every=4 --save-every=8 --out="$OUT/r21" \
    > /dev/null 2>&1
"$BIN" --resume="$OUT/r21" --steps=16 > "$OUT/r21.log" 2>&1
check "resume a -np 2 run in one process: exit code" [ $? -eq 0 ]
check "resume a -np 2 run in one process: equals the straight run" close "$OUT/straight/metrics.csv" "$OUT/r21/metrics.csv" $GPT_COLS 1e-6

# --- errors end the job ----------------------------------------------------------
err=$("${MPI[@]}" "$BIN" "${TINY[@]}" --batch=7 --out="$OUT/bad" 2>&1 >/dev/null); rc=$?
check "--batch=7 over 2 processes: exit 2, got $rc" [ "$rc" -eq 2 ]
check "--batch=7 over 2 processes: said once" \
    [ "$(grep -c 'error: --batch=7 does not divide by the 2 processes' <<< "$err")" -eq 1 ]
check "--batch=7 over 2 processes: nothing written" [ ! -e "$OUT/bad" ]
# SIGTERM to the job: every process stops after its step, rank 0 writes a
# checkpoint, the job exits non-zero within seconds, and the run resumes
"${MPI[@]}" "$BIN" "${TINY[@]}" --steps=1000000 --eval-every=1000000 --out="$OUT/term" > "$OUT/term.log" 2>&1 &
job=$!
for _ in $(seq 50); do [ -s "$OUT/term/metrics.csv" ] && [ "$(wc -l < "$OUT/term/metrics.csv")" -gt 3 ] && break; sleep 0.2; done
t0=$(date +%s)
kill -TERM "$job"
wait "$job"; rc=$?
t1=$(date +%s)
check "SIGTERM: the job exits non-zero ($rc)" [ "$rc" -ne 0 ]
check "SIGTERM: within 10 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 10 ]
check "SIGTERM: a checkpoint was written" grep -q "^terminated: checkpoint written at step" "$OUT/term.log"
step=$(grep -o 'written at step [0-9]*' "$OUT/term.log" | grep -o '[0-9]*$')
"$BIN" --resume="$OUT/term" --steps=$((${step:-0} + 2)) > "$OUT/term_resume.log" 2>&1
check "SIGTERM: the checkpoint resumes (step ${step:-none})" [ $? -eq 0 ]

# a process that fails on its own (its data file is missing: mpirun's MPMD
# form gives rank 1 other flags) ends the whole job with its one-line error,
# within seconds, and the run's checkpoint stays as it was
"$BIN" "${TINY[@]}" --data="$OUT/tok.bin" --val-data="$OUT/tok.bin" --vocab=50 --steps=8 --save-every=8 \
    --out="$OUT/fail" > /dev/null 2>&1
cp "$OUT/fail/checkpoint.bin" "$OUT/fail.ckpt"
t0=$(date +%s)
err=$(timeout 60 "${LAUNCH[@]}" -np 1 "$BIN" --resume="$OUT/fail" --steps=16 : \
      -np 1 "$BIN" --resume="$OUT/fail" --steps=16 --data="$OUT/missing.bin" 2>&1 >/dev/null); rc=$?
t1=$(date +%s)
check "one process fails: the job exits non-zero ($rc), not by the 60 s timeout" [ "$rc" -ne 0 -a "$rc" -ne 124 ]
check "one process fails: within 10 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 10 ]
check "one process fails: its error names the file" grep -q "missing.bin" <<< "$err"
check "one process fails: the checkpoint unchanged" cmp -s "$OUT/fail/checkpoint.bin" "$OUT/fail.ckpt"
"$BIN" --resume="$OUT/fail" --steps=10 > /dev/null 2>&1
check "one process fails: the checkpoint resumes" [ $? -eq 0 ]

echo "test_mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
