#!/usr/bin/env bash
# test_gpu_runs.sh - whole-trainer checks that need a GPU (run by make test-gpu
# after build/test_gpu): the CUDA run of the built-in task reproduces the CPU
# run's loss curve; test_crash.sh (kills, signals, full disk, NaN policy) on
# the CUDA backend; compute-sanitizer memcheck and racecheck on short runs of
# both trainers; out-of-memory at start names what was needed and available;
# the end-of-run peak GPU memory line; --device=auto with the device visible,
# and hidden (falls back to the CPU, saying why).
# Without a usable GPU it says it skipped and counts nothing. With CUDA_EMU=1
# (make test-gpu-emu) TRAIN_GPT and TRAIN_VIT are trainers built on the CUDA
# emulator (tests/cuda_emu): everything runs except compute-sanitizer.
set -u
cd "$(dirname "$0")/.."
TRAIN_GPT=${TRAIN_GPT:-./train_gpt}
TRAIN_VIT=${TRAIN_VIT:-./train_vit}
OUT=tests/out/gpu_runs
rm -rf "$OUT"; mkdir -p "$OUT"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL test_gpu_runs: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

if ! err=$("$TRAIN_GPT" --device=cuda --steps=1 --layers=1 --embd=16 --heads=2 --seq=8 --batch=2 \
           --mqar-keys=4 --mqar-pairs=2 --out="$OUT/probe" 2>&1); then
    echo "test_gpu_runs: skipped: $(printf '%s' "$err" | tail -n 1)"
    exit 0
fi

# "ROWS WORST": rows of two metrics.csv files compared on columns $3 and $4, and
# the worst relative difference; a value missing on one side or not a finite
# number (nan, inf), or a zero reference, counts as a difference of 1
worst_difference() {
    paste -d, <(cut -d, -f"$3,$4" "$1") <(cut -d, -f"$3,$4" "$2") |
        awk -F, 'function num(s) { return s ~ /^-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
                 NR > 1 { rows++; for (k = 1; k <= 2; k++) if ($k != "" || $(k + 2) != "") {
                 r = 1
                 if (num($k) && num($(k + 2)) && $k + 0 != 0) {
                     d = $k - $(k + 2); if (d < 0) d = -d; a = $k < 0 ? -$k : $k; r = d / a }
                 if (r > w) w = r } } END { printf "%d %.3g", rows, w }'
}

# the curves of a cpu and a cuda run (in $OUT/$1_cpu, $OUT/$1_cuda) agree to 1e-4 relative
compare_curves() {   # name, columns, the rows expected at least, a description
    local r
    r=$(worst_difference "$OUT/$1_cpu/metrics.csv" "$OUT/$1_cuda/metrics.csv" "${2%,*}" "${2#*,}")
    local rows=${r% *} worst=${r#* }
    echo "cuda vs cpu, $4: $rows rows, worst relative loss difference $worst"
    check "cuda reproduces the cpu loss curve of $4 ($rows rows, worst $worst)" \
        awk -v n="$rows" -v m="$3" -v w="$worst" 'BEGIN { exit !(n + 0 >= m && w + 0 <= 1e-4) }'
}

# the built-in task on both backends from the same seed: train and val losses
# (fp32 on the GPU: bf16 is compared with it below)
TASK=(--layers=2 --heads=4 --embd=64 --seq=32 --batch=16 --mqar-keys=16 --mqar-pairs=4
      --steps=50 --eval-every=10 --log-every=1000 --dtype=fp32)
for dev in cpu cuda; do
    "$TRAIN_GPT" "${TASK[@]}" --device=$dev --out="$OUT/gpt_$dev" > "$OUT/gpt_$dev.log" 2>&1
    check "$dev run of the built-in task (see $OUT/gpt_$dev.log)" [ $? -eq 0 ]
done
compare_curves gpt 4,5 50 "50 steps of the built-in task"

# ViT-small (SPT, LSA, dropout, RandAugment, crop, label smoothing) on random IDX
# images, 3 epochs: train and val losses
python3 - "$OUT/idx" <<'PY'
import os, random, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True); r = random.Random(1)
for split, n in (("train", 40), ("t10k", 20)):
    open(f"{d}/{split}-images-idx3-ubyte", "wb").write(
        struct.pack(">IIII", 0x803, n, 8, 8) + bytes(r.randrange(256) for _ in range(64 * n)))
    open(f"{d}/{split}-labels-idx1-ubyte", "wb").write(
        struct.pack(">II", 0x801, n) + bytes(r.randrange(10) for _ in range(n)))
PY
VIT=(--dataset=mnist --data-dir="$OUT/idx" --patch=4 --dim=16 --depth=2 --heads=2 --mlp-dim=32
     --batch=8 --epochs=3 --attn=x --gamma=0.5 --randaug=2,9 --crop=1 --label-smoothing=0.1
     --lr=1e-3 --log-every=1000 --dtype=fp32)
for dev in cpu cuda; do
    "$TRAIN_VIT" "${VIT[@]}" --device=$dev --out="$OUT/vit_$dev" > "$OUT/vit_$dev.log" 2>&1
    check "$dev run of ViT (see $OUT/vit_$dev.log)" [ $? -eq 0 ]
done
compare_curves vit 4,6 3 "3 epochs of ViT-small x"

# --dtype=bf16 (auto's choice on a GPU) against fp32 on the GPU: the built-in
# task over 200 steps, and the ViT above, train and val losses within 1%
dtype_curves() {   # name, columns, rows expected at least, a description, the run
    local name=$1 cols=$2 rows_min=$3 what=$4; shift 4
    for dt in fp32 bf16; do
        "$@" --device=cuda --dtype=$dt --out="$OUT/${name}_$dt" > "$OUT/${name}_$dt.log" 2>&1
        check "$what, --dtype=$dt (see $OUT/${name}_$dt.log)" [ $? -eq 0 ]
        check "$what, --dtype=$dt says so" grep -q "^dtype: $dt" "$OUT/${name}_$dt.log"
    done
    local r
    r=$(worst_difference "$OUT/${name}_fp32/metrics.csv" "$OUT/${name}_bf16/metrics.csv" "${cols%,*}" "${cols#*,}")
    local rows=${r% *} worst=${r#* }
    echo "bf16 vs fp32, $what: $rows rows, worst relative loss difference $worst"
    check "bf16 follows the fp32 loss curve of $what within 1% ($rows rows, worst $worst)" \
        awk -v n="$rows" -v m="$rows_min" -v w="$worst" 'BEGIN { exit !(n + 0 >= m && w + 0 <= 1e-2) }'
}
# (a smaller model than above, so that 2 x 200 emulated steps stay short)
BF16_TASK=(--layers=2 --heads=2 --embd=32 --seq=16 --batch=8 --mqar-keys=8 --mqar-pairs=3
           --steps=200 --eval-every=20 --log-every=1000)
dtype_curves dtype_gpt 4,5 200 "200 steps of the built-in task" "$TRAIN_GPT" "${BF16_TASK[@]}"
dtype_curves dtype_vit 4,6 3 "3 epochs of ViT-small x" "$TRAIN_VIT" "${VIT[@]}"

# the end of a CUDA run says how much device memory it took: one line, more than
# the parameters, gradients and AdamW's two moments (4 floats a parameter), no
# more than was in use on the device, less than the device has (on the
# emulator: CUDA_EMU_MEMORY_MIB, 4096 unless set, and in use = allocated: the
# emulator's own count); nothing of the kind on the CPU
peak_of() {   # log -> "ALLOCATED_MIB IN_USE_MIB TOTAL_MIB" of its peak GPU memory line
    sed -n 's/^peak GPU memory: \([0-9.]*\) MiB allocated by the trainer, \([0-9.]*\) MiB in use on the device at most (device total \([0-9.]*\) \([MG]\)iB)$/\1 \2 \3 \4/p' "$1" |
        awk '{ print $1, $2, $4 == "G" ? $3 * 1024 : $3 }'
}
check_peak() {   # name, the cuda run's log, the cpu run's log
    local peak alloc used total params
    peak=$(peak_of "$2")
    check "$1: one peak GPU memory line, the last of the cuda run (see $2)" \
        [ "$(grep -c '^peak GPU memory: ' "$2")" -eq 1 -a -n "$peak" \
          -a "$(tail -n 1 "$2")" = "$(grep '^peak GPU memory: ' "$2")" ]
    check "$1: no peak GPU memory line on the cpu (see $3)" [ "$(grep -c 'peak GPU memory' "$3")" -eq 0 ]
    read -r alloc used total <<< "${peak:-0 0 0}"
    # the header's "0.12M parameters", less its rounding: a lower bound of the count
    params=$(sed -n 's/.* | \([0-9.]*\)M parameters | .*/\1/p' "$2" | head -n 1)
    echo "$1: peak GPU memory $alloc MiB allocated, $used MiB in use, device $total MiB; ${params}M parameters"
    check "$1: $alloc MiB allocated > 4 floats for each of ${params}M parameters" \
        awk -v a="$alloc" -v p="${params:-1e9}" 'BEGIN { exit !(a * 1048576 > 16 * (p - 0.005) * 1e6) }'
    check "$1: $alloc MiB allocated <= $used MiB in use < $total MiB on the device" \
        awk -v a="$alloc" -v u="$used" -v t="$total" 'BEGIN { exit !(a + 0 > 0 && a <= u + 0 && u < t + 0) }'
    if [ "${CUDA_EMU:-0}" = 1 ]; then
        check "$1: the emulator's memory, ${CUDA_EMU_MEMORY_MIB:-4096} MiB, is the device total ($total MiB)" \
            awk -v t="$total" -v m="${CUDA_EMU_MEMORY_MIB:-4096}" 'BEGIN { exit !(t == m) }'
        check "$1: allocated ($alloc MiB) = in use on the emulated device ($used MiB)" [ "$alloc" = "$used" ]
    fi
}
check_peak "train_gpt" "$OUT/gpt_cuda.log" "$OUT/gpt_cpu.log"
check_peak "train_vit" "$OUT/vit_cuda.log" "$OUT/vit_cpu.log"
if [ "${CUDA_EMU:-0}" = 1 ]; then
    # the peak is what the run needs: an emulated device a MiB smaller than it
    # runs out of memory, one a MiB larger (the peak rounded up) does not
    read -r alloc _ <<< "$(peak_of "$OUT/gpt_cuda.log")"
    below=$(awk -v a="${alloc:-0}" 'BEGIN { printf "%d", a - 0.1 }')
    above=$(awk -v a="${alloc:-0}" 'BEGIN { printf "%d", a + 1.1 }')
    CUDA_EMU_MEMORY_MIB=$below "$TRAIN_GPT" "${TASK[@]}" --steps=1 --device=cuda --out="$OUT/peak_below" \
        > "$OUT/peak_below.log" 2>&1; rc=$?
    oom=$(grep -c 'out of memory' "$OUT/peak_below.log")
    check "train_gpt on a device of $below MiB (peak $alloc MiB): out of memory, exit 1 (got $rc)" \
        [ "$rc" -eq 1 -a "$below" -gt 0 -a "$oom" -eq 1 ]
    CUDA_EMU_MEMORY_MIB=$above "$TRAIN_GPT" "${TASK[@]}" --steps=1 --device=cuda --out="$OUT/peak_above" \
        > "$OUT/peak_above.log" 2>&1; rc=$?
    check "train_gpt on a device of $above MiB (peak $alloc MiB): runs (exit $rc), the same peak" \
        [ "$rc" -eq 0 -a "$(peak_of "$OUT/peak_above.log" | cut -d' ' -f1)" = "$alloc" ]
fi

# --device=auto: the GPU when there is one, with no line about the CPU; with
# the device hidden (the emulator's CUDA_EMU_DEVICES=0, the driver's
# CUDA_VISIBLE_DEVICES=) the CPU, with one line naming the failing call
auto_run() {   # trainer, name, its flags: the run's console in $OUT/auto_NAME.log
    local bin=$1 name=$2; shift 2
    "$bin" "$@" --device=auto --out="$OUT/auto_$name" > "$OUT/auto_$name.log" 2>&1
    check "--device=auto $name: exit 0 (see $OUT/auto_$name.log)" [ $? -eq 0 ]
}
GPT_SHORT=(--steps=2 --layers=1 --embd=16 --heads=2 --seq=8 --batch=2 --mqar-keys=4 --mqar-pairs=2)
VIT_SHORT=(--dataset=mnist --data-dir="$OUT/idx" --patch=4 --dim=16 --depth=1 --heads=2 --mlp-dim=16
           --batch=16 --epochs=1)
auto_run "$TRAIN_GPT" gpt_gpu "${GPT_SHORT[@]}"
log="$OUT/auto_gpt_gpu.log"
check "--device=auto with the device visible: train_gpt on it, no line about the CPU, its memory (see $log)" \
    [ "$(grep -c 'CUDA not used' "$log")" -eq 0 -a "$(grep -c '| device cuda' "$log")" -eq 1 \
      -a "$(grep -c '^peak GPU memory: ' "$log")" -eq 1 ]
for t in gpt vit; do
    if [ $t = gpt ]; then bin=$TRAIN_GPT; flags=("${GPT_SHORT[@]}"); else bin=$TRAIN_VIT; flags=("${VIT_SHORT[@]}"); fi
    CUDA_EMU_DEVICES=0 CUDA_VISIBLE_DEVICES= auto_run "$bin" ${t}_hidden "${flags[@]}"
    log="$OUT/auto_${t}_hidden.log"
    why=$(grep '^device: --device=auto: using the CPU: CUDA not used: ' "$log")
    echo "train_$t --device=auto, the device hidden: $why"
    check "train_$t --device=auto, the device hidden: one line naming cudaGetDeviceCount (see $log)" \
        [ "$(grep -c 'CUDA not used' "$log")" -eq 1 -a \
          "$(grep -c 'CUDA not used: no usable CUDA device: cudaGetDeviceCount ' <<< "$why")" -eq 1 ]
    check "train_$t --device=auto, the device hidden: on the cpu, no GPU memory line (see $log)" \
        [ "$(grep -c '| device cpu |' "$log")" -eq 1 -a "$(grep -c 'peak GPU memory' "$log")" -eq 0 ]
    err=$(CUDA_EMU_DEVICES=0 CUDA_VISIBLE_DEVICES= "$bin" "${flags[@]}" --device=cuda \
          --out="$OUT/cuda_hidden_$t" 2>&1); rc=$?
    check "train_$t --device=cuda, the device hidden: exit 1 and the same reason (got $rc: $err)" \
        [ "$rc" -eq 1 -a "$err" = "error: --device=cuda: ${why#device: --device=auto: using the CPU: CUDA not used: }" ]
done

# no allocation inside a step, few waits for the device, and nothing left
# allocated at the end: runs of n and 2n steps counted by the emulator
# (CUDA_EMU_STATS); on a GPU, memcheck's leak check below sees the last.
# A step waits 5 times: the batch's two uploads, the loss (and for ViT the
# argmax: train accuracy) for the log, the gradient norm for the NaN check,
# and for the GPT the embedding's pinned-buffer event instead of the argmax.
device_counts() {   # stats file -> "mallocs frees waits unfreed"
    awk '{ v[$1] = $2 } END { print v["mallocs"], v["frees"], v["waits"], v["unfreed"] }' "$1"
}
step_costs() {   # name, steps of the short run, steps of the long run, then the two commands
    local name=$1 n1=$2 n2=$3 a b
    CUDA_EMU_STATS="$OUT/$name.stats1" $4 > /dev/null 2>&1 &&
        CUDA_EMU_STATS="$OUT/$name.stats2" $5 > /dev/null 2>&1
    check "$name: the counted runs (see $OUT/$name.stats*)" [ $? -eq 0 ]
    read -r m1 f1 w1 u1 < <(device_counts "$OUT/$name.stats1")
    read -r m2 f2 w2 u2 < <(device_counts "$OUT/$name.stats2")
    local per=$(( (w2 - w1) / (n2 - n1) ))
    echo "$name: $m1 cudaMalloc in $n1 steps, $m2 in $n2; $per waits for the device per step"
    check "$name: no allocation inside a step ($m1 vs $m2 cudaMalloc, $f1 vs $f2 cudaFree)" \
        [ "$m1 $f1" = "$m2 $f2" ]
    check "$name: at most 5 waits for the device per step (got $per)" [ "$per" -le 5 ]
    check "$name: everything freed by the end of the run ($u1 and $u2 objects left)" \
        [ "$u1 $u2" = "0 0" ]
}
if [ "${CUDA_EMU:-0}" = 1 ]; then
    G="$TRAIN_GPT --device=cuda --layers=2 --heads=2 --embd=32 --seq=16 --batch=4 --mqar-keys=8
       --mqar-pairs=3 --eval-every=1000 --log-every=1000 --overwrite=1 --out=$OUT/steps_gpt"
    step_costs "train_gpt step" 4 8 "$G --steps=4" "$G --steps=8"
    V="$TRAIN_VIT --device=cuda --dataset=mnist --data-dir=$OUT/idx --patch=4 --dim=16 --depth=1
       --heads=2 --mlp-dim=16 --batch=8 --eval-every=1000 --overwrite=1 --out=$OUT/steps_vit"
    step_costs "train_vit step" 10 20 "$V --epochs=2" "$V --epochs=4"   # 5 steps an epoch
fi

# the attention op bench (bench/gpu.sh's OURS_ATTN_BENCH) on two small shapes:
# a result line for bf16 and fp32, std and x, each with positive times
if [ -n "${BENCH_ATTENTION:-}" ] && [ -x "$BENCH_ATTENTION" ]; then
    ATTN_T=64,130 ATTN_TOKENS=520 ATTN_HS=32 ATTN_REPS=1 ATTN_WARMUP=1 "$BENCH_ATTENTION" \
        > "$OUT/bench_attention.log" 2>&1
    check "bench_attention runs (see $OUT/bench_attention.log)" [ $? -eq 0 ]
    n=$(awk '/^ATTN_RESULT / { ok = 1; for (i = 2; i <= NF; i++) { split($i, kv, "=")
             if (kv[1] ~ /_ms$/ && !(kv[2] + 0 > 0)) ok = 0 } n += ok } END { print n + 0 }' \
        "$OUT/bench_attention.log")
    check "bench_attention: 8 result lines with positive times (got $n)" [ "$n" -eq 8 ]
fi

# crash safety, signals, a full disk and the NaN policy with --device=cuda: the
# CPU suite's checks, their counts added to these
crash=$(TRAIN_DEVICE=cuda TRAIN_GPT="$TRAIN_GPT" tests/test_crash.sh 2>&1)
printf '%s\n' "$crash" | grep '^FAIL'
counts=$(printf '%s\n' "$crash" | sed -n 's/^test_crash: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
if [ -n "$counts" ]; then
    passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* }))
    echo "test_crash.sh on cuda: ${counts% *} passed, ${counts#* } failed"
else
    bad "test_crash.sh on cuda ended without its summary: $(printf '%s' "$crash" | tail -n 1)"
fi

# short runs of both trainers under compute-sanitizer memcheck and racecheck;
# on the emulator, plain runs (the emulator makes its own checks)
short_runs() {   # $1: a name for the logs; the rest: what to run the trainers under
    local tag=$1; shift
    "$@" "$TRAIN_GPT" --device=cuda --steps=3 --layers=1 --embd=32 --heads=2 --seq=16 --batch=4 \
        --mqar-keys=8 --mqar-pairs=3 --optim=setadam --attn=x --out="$OUT/gpt_$tag" \
        > "$OUT/gpt_$tag.log" 2>&1
    check "$tag train_gpt (see $OUT/gpt_$tag.log)" [ $? -eq 0 ]
    "$@" "$TRAIN_VIT" --device=cuda --dataset=mnist --data-dir="$OUT/idx" --patch=4 --dim=16 \
        --depth=1 --heads=2 --mlp-dim=16 --batch=16 --epochs=1 --attn=x --out="$OUT/vit_$tag" \
        > "$OUT/vit_$tag.log" 2>&1
    check "$tag train_vit (see $OUT/vit_$tag.log)" [ $? -eq 0 ]
}
if [ "${CUDA_EMU:-0}" = 1 ]; then
    echo "SKIPPED: compute-sanitizer: the kernels run on the CUDA emulator, not a GPU"
    short_runs emulated env
elif command -v compute-sanitizer >/dev/null || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    short_runs memcheck "$CS" --tool memcheck --leak-check full --error-exitcode 9
    short_runs racecheck "$CS" --tool racecheck --error-exitcode 9
else
    echo "SKIPPED: compute-sanitizer not found"
fi

# data parallelism through NCCL: mpirun -np 1 on one GPU (the all-reduce of a
# one-process communicator) gives the plain CUDA run's losses (needs mpirun and
# a train_gpt built with MPI and NCCL; the emulator has no NCCL)
if [ "${CUDA_EMU:-0}" != 1 ] && command -v mpirun > /dev/null && ldd "$TRAIN_GPT" | grep -q libnccl &&
   ldd "$TRAIN_GPT" | grep -q libmpi; then
    launch=(mpirun -np 1 -x OMP_NUM_THREADS)
    [ "$(id -u)" -eq 0 ] && launch+=(--allow-run-as-root)
    NCCL_RUN=(--device=cuda --steps=20 --layers=2 --embd=32 --heads=2 --seq=16 --batch=8 --mqar-keys=8
              --mqar-pairs=3 --eval-every=10 --log-every=100 --attn=x)
    "$TRAIN_GPT" "${NCCL_RUN[@]}" --out="$OUT/nccl_plain" > "$OUT/nccl_plain.log" 2>&1
    "${launch[@]}" "$TRAIN_GPT" "${NCCL_RUN[@]}" --out="$OUT/nccl_mpi" > "$OUT/nccl_mpi.log" 2>&1
    check "mpirun -np 1 through NCCL: exit code (see $OUT/nccl_mpi.log)" [ $? -eq 0 ]
    read -r rows worst <<< "$(worst_difference "$OUT/nccl_plain/metrics.csv" "$OUT/nccl_mpi/metrics.csv" 4 5)"
    echo "mpirun -np 1 through NCCL vs the plain CUDA run: $rows rows, worst relative difference $worst"
    check "mpirun -np 1 through NCCL: losses within 1e-6 of the plain run ($worst)" \
        awk -v w="$worst" -v r="$rows" 'BEGIN { exit !(r > 0 && w <= 1e-6) }'
else
    echo "SKIPPED: mpirun -np 1 through NCCL (emulator, or no mpirun, MPI or NCCL in $TRAIN_GPT)"
fi

# out of memory at start: one line with what was asked for and what is free
err=$("$TRAIN_GPT" --device=cuda --layers=48 --embd=4096 --heads=32 --seq=4096 --batch=1024 \
      --data=mqar --steps=1 --out="$OUT/oom" 2>&1 >/dev/null); rc=$?
check "out of memory: exit 1 (got $rc)" [ "$rc" -eq 1 ]
case "$err" in *"MiB free of"*) ok ;; *) bad "out of memory message: $err" ;; esac

echo "test_gpu_runs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
