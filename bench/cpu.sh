#!/usr/bin/env bash
# bench/cpu.sh - our trainers (--device=cpu) beside eager PyTorch, in one run,
# on the same machine and the same number of threads, plus llm.c's CPU
# trainer at the same GPT shape and the machine's SGEMM rate (OpenBLAS).
#
#   bench/cpu.sh                       all configs, 2 threads (~3 min on an idle
#                                      2-core machine with the fast backend)
#   THREADS=4 LLMC_DIR=~/llm.c bench/cpu.sh
#
# Configs (the same model, batch and optimizer on every side):
#   gpt    GPT, 4 layers, 128 wide, 4 heads, T=128, B=16, vocab 512 (random
#          tokens), AdamW, clip 1; --attn=std and --attn=x --gamma=1
#   fmnist plain ViT on Fashion-MNIST: patch 7, dim 64, depth 2, 4 heads, MLP
#          128, batch 128, AdamW, no augmentation, no dropout; both attentions
#   vits   the paper's ViT-small (SPT + LSA, patch 4, dim 512, depth 6, 8
#          heads, MLP 512) on random CIFAR-shaped 32x32x3 data, batch 64
#   llm.c  karpathy/llm.c's train_gpt2.c at the gpt config (standard attention)
#   first  README's first command, `./train_gpt` with no flags (the built-in
#          task), whole-run wall time and final answer accuracy, std and x
#   mpi    data parallelism's cost: the gpt config (std) as 1 process x 1
#          thread, `mpirun -np 2` x 1 thread each, and 1 process x 2 threads
#          (skipped without mpirun or a train_gpt built with MPI)
#
# Timing: every side runs W warmup steps, then N timed steps; a step is batch,
# forward, backward, optimizer update. Ours: train_gpt's per-step "ms" log
# field; train_vit's progress lines (--log-every=1) time-stamped as they
# arrive. PyTorch (bench/torch_bench.py): time.perf_counter around each step.
# llm.c: its own per-step "took ... ms". Rates are N steps' items / their time.
# (Ours and PyTorch also take the gradient norm and clip at 1 in the GPT, as
# train_gpt does by default; llm.c's step has neither.)
#
# Environment (all optional):
#   THREADS      threads on every side (OMP_NUM_THREADS, torch.set_num_threads); 2
#   DEVICE       our trainers' --device; cpu
#   ONLY         a subset of "gpt fmnist vits llmc first mpi"
#   LLMC_DIR     a directory with llm.c's train_gpt2.c and llmc/; unset: skipped
#   LLMC_CFLAGS  llm.c's compiler flags; default "-Ofast -march=native -fopenmp -DOMP",
#                what its own Makefile builds train_gpt2 with
#   BENCH_OUT    the report file; bench/out/cpu-DATE.txt (bench/out/ is ignored by git)
#   GPT_WARMUP GPT_STEPS GPT_REPEATS (3, 30, 3: rounds of ours, std and x alternately,
#                the median round reported)  FMNIST_WARMUP FMNIST_STEPS (5, 30)  VITS_WARMUP VITS_STEPS (1, 5)
#   IDLE_WAIT    seconds to wait, before each measurement, for other processes
#                to leave the CPUs idle; 30. (Other processes' CPU time during a
#                measurement puts a warning on the report.)
#   TRAIN_GPT TRAIN_VIT  binaries to use; unset: `make train_gpt train_vit` first
#   FASHION_DIR  Fashion-MNIST's IDX files; /usr/share/datasets/fashion-mnist
#   PYTHON       a python3 with torch; /usr/bin/python3 (Debian's python3-torch)
#   BENCH_KEEP   1: keep the temporary directory (data, run logs, llm.c build)
# The environment is otherwise left as it is, for all sides alike (OpenBLAS's
# OPENBLAS_* variables, OMP_WAIT_POLICY, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
ONLY=${ONLY:-gpt fmnist vits llmc first mpi}
PY=${PYTHON:-/usr/bin/python3}
LLMC_CFLAGS=${LLMC_CFLAGS:--Ofast -march=native -fopenmp -DOMP}
FASHION_DIR=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
GPT_WARMUP=${GPT_WARMUP:-3} GPT_STEPS=${GPT_STEPS:-30} GPT_REPEATS=${GPT_REPEATS:-3}
FMNIST_WARMUP=${FMNIST_WARMUP:-5} FMNIST_STEPS=${FMNIST_STEPS:-30}
VITS_WARMUP=${VITS_WARMUP:-1} VITS_STEPS=${VITS_STEPS:-5}
IDLE_WAIT=${IDLE_WAIT:-30}
BENCH_OUT=${BENCH_OUT:-bench/out/cpu-$(date +%Y%m%d-%H%M%S).txt}
export OMP_NUM_THREADS=$THREADS

die() { echo "bench/cpu.sh: $*" >&2; exit 1; }
note() { echo "[$(date +%H:%M:%S)] $*" >&2; }
wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# Jiffies the whole machine has spent busy (user nice system irq softirq steal).
busy_jiffies() {
    local s
    read -ra s < /proc/stat
    echo $((s[1] + s[2] + s[3] + s[6] + s[7] + s[8]))
}
# The CPU time (ms) of this shell's finished children, into CHILD_MS. (Not
# through $(...): a subshell's `times` starts from zero.)
child_ms() {
    times > "$work/times"
    CHILD_MS=$(awk 'NR == 2 { t = 0; gsub(",", ".")
                              for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
                              printf "%.0f\n", t * 1e3 }' "$work/times")
}
HZ=$(getconf CLK_TCK)
CORES=$(nproc)
# Other processes on the machine would skew every figure. Before a
# measurement: wait (up to IDLE_WAIT seconds) for a second with the CPUs under
# 15% busy. After it: the CPU time the machine spent beyond what our children
# used; over 10% of the CPUs' time puts a warning on the report.
measure_begin() {
    M_WHAT=$1
    note "$M_WHAT"
    local waited=0 j0 j1 busy
    while :; do
        j0=$(busy_jiffies); sleep 1; j1=$(busy_jiffies)
        busy=$(( 100 * (j1 - j0) / (HZ * CORES) ))
        [ "$busy" -le 15 ] || [ "$waited" -ge "$IDLE_WAIT" ] && break
        [ "$waited" -eq 0 ] && note "waiting for an idle machine ($busy% CPU busy) before: $M_WHAT"
        waited=$((waited + 1))
    done
    child_ms
    M_CHILD0=$CHILD_MS M_J0=$(busy_jiffies) M_T0=${EPOCHREALTIME/,/.}
}
measure_end() {
    child_ms
    local j1 t1 others
    j1=$(busy_jiffies) t1=${EPOCHREALTIME/,/.}
    others=$(awk -v j="$((j1 - M_J0))" -v hz="$HZ" -v c="$((CHILD_MS - M_CHILD0))" -v t0="$M_T0" -v t1="$t1" \
                 -v n="$CORES" 'BEGIN { o = (j / hz - c / 1e3) / ((t1 - t0) * n); printf "%.0f\n", o < 0 ? 0 : 100 * o }')
    if [ "$others" -gt 10 ]; then
        echo "WARNING: other processes used $others% of the CPUs during: $M_WHAT (its figures are unreliable)" |
            tee -a "$work/warnings.txt" >&2
    fi
}
attn_flags() { if [ "$1" = x ]; then echo "--attn=x --gamma=1"; else echo "--attn=std"; fi; }

for n in "$GPT_WARMUP" "$FMNIST_WARMUP" "$VITS_WARMUP" "$GPT_STEPS" "$FMNIST_STEPS" "$VITS_STEPS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "step counts must be whole numbers (got '$n')"
done
# the time-stamped ViT timing starts at the line of the last warmup step
if [ "$FMNIST_WARMUP" -lt 1 ] || [ "$VITS_WARMUP" -lt 1 ]; then die "FMNIST_WARMUP and VITS_WARMUP must be >= 1"; fi
if [ "$GPT_STEPS" -lt 1 ] || [ "$FMNIST_STEPS" -lt 1 ] || [ "$VITS_STEPS" -lt 1 ]; then die "step counts must be >= 1"; fi
# all timed ViT steps inside the first epoch (an epoch's end tests the model)
[ $((FMNIST_WARMUP + FMNIST_STEPS)) -le 468 ] || die "FMNIST_WARMUP + FMNIST_STEPS must be <= 468 (one epoch)"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash 5 or later (EPOCHREALTIME)"
"$PY" -c 'import torch' 2>/dev/null || die "$PY has no torch (install python3-torch, or set PYTHON=)"

work=$(mktemp -d "${TMPDIR:-/tmp}/attnx-bench.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then
    trap 'echo "logs kept in $work" >&2' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
results=$work/results.tsv
: > "$results"
report=$work/report.txt

# --- our binaries -------------------------------------------------------------
if [ -z "${TRAIN_GPT:-}" ] || [ -z "${TRAIN_VIT:-}" ]; then
    note "make train_gpt train_vit"
    make -j"$THREADS" train_gpt train_vit > "$work/make.log" 2>&1 || { tail -n 20 "$work/make.log" >&2; die "make failed"; }
fi
TRAIN_GPT=${TRAIN_GPT:-./train_gpt}
TRAIN_VIT=${TRAIN_VIT:-./train_vit}

# --- the machine, torch's BLAS -------------------------------------------------
{
    echo "bench/cpu.sh $(date '+%Y-%m-%d %H:%M:%S %z')"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online; threads $THREADS"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "ours: --device=$DEVICE; torch $("$PY" -c 'import torch; print(torch.__version__)') (eager, fp32)"
} | tee "$report"
blas=$("$PY" bench/torch_bench.py blas)
echo "$blas" | sed 's/^BLAS /torch BLAS: /' | tee -a "$report"
alt=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo '?')
echo "libblas.so.3 alternative: $alt" | tee -a "$report"
if ! grep -qi openblas <<< "$blas"; then
    warn="WARNING: torch is NOT using OpenBLAS (the reference BLAS, or another, is loaded): its matmuls
WARNING: are then several times slower and this comparison is unfair to PyTorch. Fix with
WARNING:   sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"
    printf '%s\n%s\n%s\n' "$warn" "$warn" "$warn" | tee -a "$report" >&2
    echo "$warn" >> "$work/warnings.txt"   # once more beside the table
fi

# --- SGEMM rate -------------------------------------------------------------------
blas_flags=$(pkg-config --cflags --libs openblas 2>/dev/null || echo "-lopenblas")
# shellcheck disable=SC2086
${CC:-gcc} -O2 -std=c11 -Wall -Wextra bench/sgemm.c -o "$work/sgemm" $blas_flags ||
    die "cannot build bench/sgemm.c (needs libopenblas-dev)"
# square; the GPT's MLP matmul (B*T x 4C x C); ViT-small's qkv (B*65 x 3D x D)
measure_begin "SGEMM (OpenBLAS)"
sgemm_out=$("$work/sgemm" 2048x2048x2048 2048x512x128:nt 4160x1536x512:nt)
measure_end
echo "$sgemm_out" | tee -a "$report"
sgemm_peak=$(awk '$2 == "2048x2048x2048" { print $4 }' <<< "$sgemm_out")

# --- data -------------------------------------------------------------------------
"$PY" bench/bench_util.py tokens "$work" 512 1048576
# CIFAR-shaped: one epoch holds every ViT-small step (and at least 10)
cifar_train=$((64 * (VITS_WARMUP + VITS_STEPS) > 640 ? 64 * (VITS_WARMUP + VITS_STEPS) : 640))
"$PY" bench/bench_util.py cifar "$work/cifar" "$cifar_train" 64

# mean ms per step of steps W+1..W+N from train_gpt's "step k/S | ... | X ms |" lines
gpt_log_ms() {
    awk -v w="$2" -v n="$3" '
        $1 == "step" && $2 ~ /^[0-9]+\/[0-9]+$/ {
            split($2, a, "/"); k = a[1] + 0
            for (i = 2; i <= NF; i++) if ($i == "ms") ms = $(i - 1)
            if (k > w && k <= w + n) { sum += ms; c++ }
        }
        END { if (c != n) exit 1; printf "%.3f\n", sum / c }' "$1"
}

# mean ms per step between the arrival of train_vit's progress line of step W
# and that of step W+N ("STAMP epoch e/E | step k/S | ..." lines)
vit_log_ms() {
    awk -v w="$2" -v n="$3" '
        $2 == "epoch" && $5 == "step" { split($6, a, "/"); s = $1; gsub(",", ".", s); t[a[1] + 0] = s }
        END { if (!((w in t) && ((w + n) in t))) exit 1; printf "%.3f\n", (t[w + n] - t[w]) * 1e3 / n }' "$1"
}

# prints every line of stdin with the time it arrived (seconds, microseconds)
stamp_lines() {
    local line
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# torch_bench.py's "RESULT ms_per_step=..." value
torch_ms() { sed -n 's/^RESULT ms_per_step=\([0-9.]*\) .*/\1/p' "$1"; }

run_or_die() {   # LOG CMD...: runs CMD with its output in LOG; its tail and exit on failure
    local log=$1; shift
    if ! "$@" > "$log" 2>&1; then
        tail -n 15 "$log" >&2
        die "failed: $*"
    fi
}

# --- a) GPT ---------------------------------------------------------------------
GPT_SHAPE=(--layers=4 --embd=128 --heads=4 --seq=128 --batch=16 --vocab=512)
gpt_items=$((16 * 128))
gpt_flops=$("$PY" bench/bench_util.py flops gpt 16 128 4 128 512)
declare -A GPT_OURS_MS GPT_TORCH_MS
if wants gpt || wants llmc; then
    # ours: std and x alternately, GPT_REPEATS rounds, the median round of each
    # (run-to-run drift on a shared machine is larger than x's cost over std)
    declare -A GPT_ROUNDS
    for ((r = 1; r <= GPT_REPEATS; r++)); do
        for attn in std x; do
            [ "$attn" = x ] && ! wants gpt && continue   # llm.c alone needs the std figures
            label="gpt L4 C128 H4 T128 B16 V512 $(attn_flags "$attn")"
            measure_begin "ours: $label (round $r of $GPT_REPEATS)"
            dir=$work/runs/gpt_${attn}_$r
            mkdir -p "$work/runs"
            run_or_die "$dir.log" "$TRAIN_GPT" "${GPT_SHAPE[@]}" --data="$work/tok_train.bin" \
                --val-data="$work/tok_val.bin" --optim=adamw --lr=1e-3 --warmup=0 --schedule=constant \
                --steps=$((GPT_WARMUP + GPT_STEPS)) --log-every=1 --eval-every=1000000000 --eval-batches=1 \
                --attn=$attn --gamma=1 --device="$DEVICE" --out="$dir"
            measure_end
            ms=$(gpt_log_ms "$dir.log" "$GPT_WARMUP" "$GPT_STEPS") || die "no step times in $dir.log"
            GPT_ROUNDS[$attn]="${GPT_ROUNDS[$attn]:-} $ms"
        done
    done
    for attn in std x; do
        [ -n "${GPT_ROUNDS[$attn]:-}" ] || continue
        GPT_OURS_MS[$attn]=$(tr ' ' '\n' <<< "${GPT_ROUNDS[$attn]}" | grep . | sort -g |
                              awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        echo "ours gpt --attn=$attn ms/step by round:${GPT_ROUNDS[$attn]} (median ${GPT_OURS_MS[$attn]})" |
            tee -a "$report"
    done
    for attn in std x; do
        [ "$attn" = x ] && ! wants gpt && continue
        label="gpt L4 C128 H4 T128 B16 V512 $(attn_flags "$attn")"
        dir=$work/runs/gpt_$attn
        measure_begin "PyTorch: $label"
        run_or_die "$dir.torch.log" "$PY" bench/torch_bench.py gpt --data "$work/tok_train.bin" --vocab 512 \
            --layers 4 --embd 128 --heads 4 --seq 128 --batch 16 --attn $attn --gamma 1 \
            --warmup "$GPT_WARMUP" --steps "$GPT_STEPS" --threads "$THREADS"
        measure_end
        GPT_TORCH_MS[$attn]=$(torch_ms "$dir.torch.log")
        if wants gpt; then
            printf 'row\t%s\ttok/s\t%s\t%s\t%s\t%s\n' "$label" "$gpt_items" "$gpt_flops" \
                "${GPT_OURS_MS[$attn]}" "${GPT_TORCH_MS[$attn]}" >> "$results"
        fi
    done
fi

# --- b) plain ViT on Fashion-MNIST ----------------------------------------------
if wants fmnist; then
    if [ -e "$FASHION_DIR/train-images-idx3-ubyte.gz" ] || [ -e "$FASHION_DIR/train-images-idx3-ubyte" ]; then
        fm_flops=$("$PY" bench/bench_util.py flops vit 128 1 28 28 7 64 2 128 10 0)
        for attn in std x; do
            label="vit fashion-mnist P7 D64 L2 H4 M128 B128 $(attn_flags "$attn")"
            measure_begin "ours: $label"
            dir=$work/runs/fmnist_$attn
            mkdir -p "$work/runs"
            "$TRAIN_VIT" --dataset=fashion-mnist --data-dir="$FASHION_DIR" --model=vit --patch=7 --dim=64 \
                --depth=2 --heads=4 --mlp-dim=128 --batch=128 --optim=adamw --lr=1e-3 --wd=0.05 \
                --randaug=0 --crop=0 --flip=0 --dropout=0 --emb-dropout=0 --attn=$attn --gamma=1 \
                --epochs=1 --max-steps=$((FMNIST_WARMUP + FMNIST_STEPS)) --log-every=1 --device="$DEVICE" \
                --out="$dir" 2>&1 | stamp_lines > "$dir.log" || { tail -n 15 "$dir.log" >&2; die "train_vit failed"; }
            measure_end
            ours=$(vit_log_ms "$dir.log" "$FMNIST_WARMUP" "$FMNIST_STEPS") || die "no step lines in $dir.log"
            measure_begin "PyTorch: $label"
            run_or_die "$dir.torch.log" "$PY" bench/torch_bench.py vit --dataset fashion-mnist \
                --data-dir "$FASHION_DIR" --model vit --patch 7 --dim 64 --depth 2 --heads 4 --mlp-dim 128 \
                --batch 128 --attn $attn --gamma 1 --warmup "$FMNIST_WARMUP" --steps "$FMNIST_STEPS" \
                --threads "$THREADS"
            measure_end
            printf 'row\t%s\timg/s\t128\t%s\t%s\t%s\n' "$label" "$fm_flops" "$ours" "$(torch_ms "$dir.torch.log")" >> "$results"
        done
    else
        echo "fashion-mnist: skipped (no IDX files in $FASHION_DIR: apt-get install dataset-fashion-mnist)" | tee -a "$report"
    fi
fi

# --- c) ViT-small on CIFAR-shaped data --------------------------------------------
if wants vits; then
    vs_flops=$("$PY" bench/bench_util.py flops vit 64 3 32 32 4 512 6 512 10 1)
    for attn in std x; do
        label="vit-small SPT+LSA P4 D512 L6 H8 M512 32x32x3 B64 $(attn_flags "$attn")"
        measure_begin "ours: $label"
        dir=$work/runs/vits_$attn
        mkdir -p "$work/runs"
        "$TRAIN_VIT" --dataset=cifar10 --data-dir="$work/cifar" --model=vit_small --patch=4 --dim=512 \
            --depth=6 --heads=8 --mlp-dim=512 --batch=64 --optim=adamw --lr=1e-3 --wd=0.05 \
            --randaug=0 --crop=0 --flip=0 --dropout=0 --emb-dropout=0 --attn=$attn --gamma=1 \
            --epochs=1 --max-steps=$((VITS_WARMUP + VITS_STEPS)) --log-every=1 --device="$DEVICE" \
            --out="$dir" 2>&1 | stamp_lines > "$dir.log" || { tail -n 15 "$dir.log" >&2; die "train_vit failed"; }
        measure_end
        ours=$(vit_log_ms "$dir.log" "$VITS_WARMUP" "$VITS_STEPS") || die "no step lines in $dir.log"
        measure_begin "PyTorch: $label"
        run_or_die "$dir.torch.log" "$PY" bench/torch_bench.py vit --dataset cifar10 --data-dir "$work/cifar" \
            --model vit_small --patch 4 --dim 512 --depth 6 --heads 8 --mlp-dim 512 --batch 64 \
            --attn $attn --gamma 1 --warmup "$VITS_WARMUP" --steps "$VITS_STEPS" --threads "$THREADS"
        measure_end
        printf 'row\t%s\timg/s\t64\t%s\t%s\t%s\n' "$label" "$vs_flops" "$ours" "$(torch_ms "$dir.torch.log")" >> "$results"
    done
fi

# --- d) llm.c's train_gpt2.c at the gpt config ------------------------------------
# A copy of train_gpt2.c, built and run in the temporary directory, with its
# hard-coded settings patched: B, T, the number of steps, no validation and
# no sampling. Its model comes from a random-weight checkpoint of our shape,
# its data from llm.c shards of the same random tokens.
llmc_line=""
if wants llmc; then
    if [ -z "${LLMC_DIR:-}" ] || [ ! -f "$LLMC_DIR/train_gpt2.c" ] || [ ! -d "$LLMC_DIR/llmc" ]; then
        llmc_line="llm.c: skipped (set LLMC_DIR=a directory with llm.c's train_gpt2.c and llmc/)"
    else
        d=$work/llmc
        mkdir -p "$d/dev/data/tinyshakespeare"
        cp "$LLMC_DIR/train_gpt2.c" "$d/"
        cp -r "$LLMC_DIR/llmc" "$d/"
        "$PY" - "$d/train_gpt2.c" $((GPT_WARMUP + GPT_STEPS)) <<'PY'
import sys
path, steps = sys.argv[1], int(sys.argv[2])
src = open(path).read()
for old, new in [
        ("int B = 4;", "int B = 16;"),
        ("int T = 64;", "int T = 128;"),
        ("for (int step = 0; step <= 40; step++) {", f"for (int step = 0; step < {steps}; step++) {{"),
        ("if (step % 10 == 0) {", "if (0) { // bench/cpu.sh: no validation"),
        ("if (step > 0 && step % 20 == 0) {", "if (0) { // bench/cpu.sh: no sampling")]:
    if src.count(old) != 1:
        sys.exit(f"llm.c's train_gpt2.c has changed: '{old}' found {src.count(old)} times, expected once")
    src = src.replace(old, new)
open(path, "w").write(src)
PY
        "$PY" bench/bench_util.py llmc-checkpoint "$d/gpt2_124M.bin" 4 128 4 128 512
        cp "$work/llmc_data/train.bin" "$d/dev/data/tinyshakespeare/tiny_shakespeare_train.bin"
        cp "$work/llmc_data/val.bin" "$d/dev/data/tinyshakespeare/tiny_shakespeare_val.bin"
        # shellcheck disable=SC2086
        run_or_die "$d/build.log" ${CC:-gcc} $LLMC_CFLAGS -o "$d/train_gpt2" "$d/train_gpt2.c" -lm
        measure_begin "llm.c: train_gpt2.c ($LLMC_CFLAGS)"
        (cd "$d" && run_or_die run.log ./train_gpt2)
        measure_end
        # "step K: train loss X (took Y ms)", K from 0: the timed steps are W..W+N-1
        llmc_ms=$(awk -v w="$GPT_WARMUP" -v n="$GPT_STEPS" '
            $1 == "step" && $NF == "ms)" { k = $2 + 0; if (k >= w && k < w + n) { sum += $(NF - 1); c++ } }
            END { if (c != n) exit 1; printf "%.3f\n", sum / c }' "$d/run.log") ||
            die "no step times in $d/run.log"
        if ! grep -q "^num_layers: 4$" "$d/run.log" || ! grep -q "^channels: 128$" "$d/run.log"; then
            die "llm.c did not read the benchmark's checkpoint"
        fi
        printf 'llmc\tllm.c train_gpt2.c (%s), gpt config, std attention\ttok/s\t%s\t%s\t%s\t%s\t%s\n' \
            "$LLMC_CFLAGS" "$gpt_items" "$gpt_flops" "$llmc_ms" "${GPT_OURS_MS[std]}" \
            "${GPT_TORCH_MS[std]}" >> "$results"
    fi
fi

# --- first: README's first run, whole, wall clock ------------------------------
first_lines=""
if wants first; then
    for attn in std x; do
        measure_begin "first run: $TRAIN_GPT $(attn_flags $attn) (the default task)"
        t0=${EPOCHREALTIME/,/.}
        # shellcheck disable=SC2046
        "$TRAIN_GPT" --device="$DEVICE" $(attn_flags $attn) --out="$work/first_$attn" > "$work/first_$attn.log" 2>&1 ||
            die "the default run failed: $work/first_$attn.log"
        t1=${EPOCHREALTIME/,/.}
        measure_end
        acc=$(tail -n 1 "$work/first_$attn/metrics.csv" | cut -d, -f6)
        first_lines+=$(awk -v a="$attn" -v t0="$t0" -v t1="$t1" -v acc="$acc" -v th="$THREADS" \
            'BEGIN { printf "first run (./train_gpt --attn=%s, %d threads): %.1f s, final answer accuracy %.4f\n", a, th, t1 - t0, acc }')
        first_lines+=$'\n'
    done
fi

# --- mpi: data parallelism's cost at the gpt config ------------------------------
# tokens/s of the same global batch (B=16) as 1 process x 1 thread, 2 processes
# x 1 thread (each 8 sequences, gradients summed by MPI_Allreduce every step)
# and 1 process x 2 threads: what the all-reduce costs against threads
mpi_lines=""
if wants mpi; then
    if command -v mpirun > /dev/null && ldd "$TRAIN_GPT" | grep -q libmpi; then
        MPIRUN=(mpirun --oversubscribe -x OMP_NUM_THREADS)
        [ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)
        for setting in 1:1 2:1 1:2; do
            np=${setting%%:*} th=${setting#*:}
            dir=$work/runs/mpi_${np}x$th
            mkdir -p "$work/runs"
            measure_begin "ours: gpt L4 C128 H4 T128 B16 V512 std, $np process(es) x $th thread(s)"
            # one process runs without mpirun, which would pin it (and its threads) to one core
            launch=("${MPIRUN[@]}" -np "$np")
            [ "$np" -eq 1 ] && launch=()
            OMP_NUM_THREADS=$th run_or_die "$dir.log" "${launch[@]}" "$TRAIN_GPT" "${GPT_SHAPE[@]}" \
                --data="$work/tok_train.bin" --val-data="$work/tok_val.bin" --optim=adamw --lr=1e-3 --warmup=0 \
                --schedule=constant --steps=$((GPT_WARMUP + GPT_STEPS)) --log-every=1 \
                --eval-every=1000000000 --eval-batches=1 --attn=std --device="$DEVICE" --out="$dir"
            measure_end
            ms=$(gpt_log_ms "$dir.log" "$GPT_WARMUP" "$GPT_STEPS") || die "no step times in $dir.log"
            mpi_lines+=$(awk -v np="$np" -v th="$th" -v ms="$ms" -v items="$gpt_items" \
                'BEGIN { printf "data parallel gpt (std, B=16): %d process(es) x %d thread(s): %.2f ms/step, %.0f tok/s\n", np, th, ms, items / ms * 1e3 }')
            mpi_lines+=$'\n'
        done
    else
        mpi_lines="data parallel: skipped (no mpirun, or $TRAIN_GPT built without MPI)"$'\n'
    fi
fi

# --- the table ----------------------------------------------------------------------
{
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ -s "$work/warnings.txt" ] && cat "$work/warnings.txt"
    timed=""
    if wants gpt || wants llmc; then timed+=", gpt/llm.c $GPT_STEPS after $GPT_WARMUP"; fi
    if wants fmnist; then timed+=", fashion-mnist $FMNIST_STEPS after $FMNIST_WARMUP"; fi
    if wants vits; then timed+=", vit-small $VITS_STEPS after $VITS_WARMUP"; fi
    echo "steps timed (after warmup steps): ${timed#, }"
    echo
    "$PY" bench/bench_util.py table "$results" "$sgemm_peak"
    [ -n "$llmc_line" ] && echo "$llmc_line"
    [ -n "$first_lines" ] && printf '%s' "$first_lines"
    [ -n "$mpi_lines" ] && printf '%s' "$mpi_lines"
    true
} | tee -a "$report"
mkdir -p "$(dirname "$BENCH_OUT")"
cp "$report" "$BENCH_OUT"
echo "report written to $BENCH_OUT"
