#!/usr/bin/env bash
# bench/gpu.sh - the one prepared script for a session with one H100/H200:
# build for the GPU, the GPU checks, then our trainers (--device=cuda) beside
# PyTorch on the same GPU in the same run. Unattended, in at most TOTAL_BUDGET
# seconds (450: under 8 minutes on an H100), everything written under $OUT.
#
#   bench/gpu.sh                          on the GPU machine (OUT set by the device tool)
#   GPU_BENCH_DRY=1 bench/gpu.sh          here, without a GPU: every section's command
#                                         construction, log parsing and the summary, on
#                                         the CPU with tiny sizes (--device=cpu, torch on
#                                         the CPU without compile)
#   ONLY="build gpt torch-gpt" bench/gpu.sh
#
# Sections, in order (each with its own timeout, and all under one deadline:
# a section that would start with too little time left is skipped and says so):
#   info       nvidia-smi (-q into the logs), nvcc, torch, the GPU's kind (H100 or
#              H200; SXM, PCIe or NVL) and its dense peaks for MFU (table below)
#   build      make -j with NVCC_ARCH for this GPU's architecture only (sm_90 on
#              Hopper: a fast build)
#   data       random GPT-2 tokens (nanoGPT uint16 .bin) and random CIFAR-10
#              binary batches (50,000 + 1,000 images), by bench/torch_gpu.py
#              (standard library only)
#   test       make test-gpu under `timeout` (if it stops at check-kernels,
#              which needs no GPU, test_gpu and tests/test_gpu_runs.sh run directly)
#   memcheck   compute-sanitizer memcheck (--leak-check full) of 3 train_gpt
#              steps of a tiny model (L2 C64, one head of 64 as GPT-2's, T64) on
#              the GPT-2 tokens, --attn=x, in the main precision
#   gpt        ours: GPT-2 124M (12 layers, 12 heads, 768 wide, vocab 50257,
#              T=1024) on the random tokens, --attn=std and --attn=x --gamma=1,
#              the largest batch of GPT_BATCHES (32 16 8) that fits (each tried in
#              turn: a batch that does not fit fails at the start), --dtype=bf16
#              when ./train_gpt --help lists it, else fp32 with TF32 GEMMs
#              (TRAIN_TF32=1; the trainer's default is strict fp32, run in "extra")
#   torch-gpt  the same model in PyTorch (bench/torch_gpu.py: nanoGPT-style, tied
#              lm_head, bf16 autocast, torch.compile, SDPA is_causal=True (flash),
#              fused AdamW), the same B and T, std and AttentionX
#   op         the attention op alone, forward and forward+backward: PyTorch SDPA
#              (flash, bf16, causal, hs 64, B*NH*T = 2^22) at T = 256, 1024, 4096,
#              and ours through the hook OURS_ATTN_BENCH; the forward kernel's
#              versions side by side (build/dev_flash_forward: v1 tiles through
#              registers, v2 the backend's staged cp.async tiles, with and without
#              the staging pass); plus the measured ceilings (bf16 and TF32
#              8192^3 matmul, a device-to-device copy)
#   vit        ours: the paper's ViT-small (configs/vit_small_cifar10.conf: SPT +
#              LSA, patch 4, dim 512, depth 6, 8 heads, MLP 512, dropout 0.1,
#              SET-Adam, batch 512) on the 50,000 random CIFAR-shaped images,
#              augmentation off, std and x
#   torch-vit  the same ViT-small in PyTorch (kentaroy47 vit_small style; Adam,
#              eager, bf16 autocast and TF32), std and x, images on the device
#   extra      if time is left: ours GPT in the other precision (strict fp32, or
#              TF32 when bf16 is the main one), std; ours ViT-small with the
#              paper's augmentation (RandAugment 2,14, crop 4, flip) on, std
#
# Timing: ours, train_gpt's per-step "X ms" log field (host clock around a whole
# step; a step waits for the device for its gradient norm); train_vit's
# progress lines (--log-every=1) time-stamped as they arrive. PyTorch:
# time.perf_counter around each step, which ends with loss.item(). Both: the
# MEDIAN of the timed steps after the warmup steps. The ViT epoch is timed on a
# fraction (VIT_WARMUP + VIT_STEPS of its 98 batches of 512) and extrapolated to
# 50,000 images; the summary says so.
# MFU: tok/s x FLOPs/token / the GPU's dense peak, FLOPs/token = 6N + 6LCT
# (llm.c's count: 0.803 GFLOP for GPT-2 124M at T=1024), N = the parameters as
# train_gpt counts them: embeddings (wte with the real vocabulary 50257, wpe)
# included, the tied lm_head once, padded embedding rows (50257 -> 50304) not:
# N = 124,439,808 (llm.c's N counts the padded rows, 124,475,904: +0.03%).
# Two MFUs: against the bf16 tensor peak (the one comparable across sides and
# with llm.c's figures) and against the peak of the precision the run used.
# Peak memory: nvidia-smi's memory.used sampled every 0.2 s during the run
# (the whole device: includes the CUDA context), the max; torch also reports
# torch.cuda.max_memory_allocated; a "peak" line of ours is quoted if printed.
# FLOPs of the attention op: forward 4 B NH T^2 hs halved for causal, backward
# 2.5 x forward (FlashAttention's convention).
#
# Output under $OUT (at most 8 files, as the device tool returns): summary.md
# (the tables, ready for bench/results.md; rewritten after every section, so a
# killed run leaves what it had), console.log, results.tsv (every figure,
# tab-separated) and logs.tar.gz (every run's log, nvidia-smi -q, the build log).
#
# Environment (all optional):
#   OUT              output folder; bench/out/gpu-DATE (bench/out/ is ignored by git)
#   GPU_BENCH_DRY    1: the dry run on the CPU described above (no GPU needed); its
#                    sizes are fixed, its step counts (2, 5) and batches (8 4 2) can be set
#   TOTAL_BUDGET     seconds for the whole script; 450 (the summary needs ~5 more)
#   ONLY             a subset of "build data test memcheck gpt torch-gpt op vit torch-vit extra"
#   GPU_NVCC_ARCH    nvcc's architecture flags; from nvidia-smi's compute capability
#                    (9.0: "-gencode arch=compute_90,code=sm_90")
#   GPT_BATCHES      batches to try, largest first; "32 16 8"
#   GPT_WARMUP GPT_STEPS   5, 20 (timed steps after the warmup ones; both sides)
#   VIT_WARMUP VIT_STEPS   3, 48 (of the epoch's 98 batches; both sides)
#   TORCH_COMPILE    1: torch.compile the PyTorch GPT; 0: eager
#   TORCH_VIT_COMPILE  0: eager PyTorch ViT, as the reference repository; 1: compiled
#   OURS_ATTN_BENCH  a command that benchmarks our attention op alone; unset: the
#                    first of build/bench_attention, ./bench_attention that exists.
#                    It is run with the environment ATTN_T=256,1024,4096 ATTN_HS=64
#                    ATTN_TOKENS=4194304 (B*NH*T), and each output line
#                      ATTN_RESULT attn=std T=1024 B=.. NH=.. fwd_ms=.. fwdbwd_ms=..
#                    goes into the op table (TFLOP/s by the convention above);
#                    other lines go to its log
#   PYTHON           the python3 to use (with torch for the PyTorch sections); unset:
#                    the first of python3, /usr/bin/python3, /opt/torch/.venv/bin/python3
#                    that imports torch
#   JOBS             make -j; the number of CPUs
#   BUILD_TIMEOUT TESTGPU_TIMEOUT MEMCHECK_TIMEOUT GPT_RUN_TIMEOUT TORCH_GPT_TIMEOUT
#   OP_TIMEOUT VIT_RUN_TIMEOUT TORCH_VIT_TIMEOUT   per-section caps in seconds:
#                    150 100 45 75 200 75 60 120 (each also cut to the time left)
#   GPU_BENCH_BUILD  0: use the binaries as they are (the dry run's default: 0)
#   GPU_BENCH_FAKE_OOM  (testing) a batch our GPT runs treat as out of memory
# The GPU's settings are never changed (no clocks, power, persistence, reset).
set -uo pipefail
T_START=$EPOCHSECONDS   # the budget counts from here
cd "$(dirname "$0")/.." || exit 1

DRY=${GPU_BENCH_DRY:-0}
TOTAL_BUDGET=${TOTAL_BUDGET:-450}
ONLY=${ONLY:-build data test memcheck gpt torch-gpt op vit torch-vit extra}
NCPU=$(getconf _NPROCESSORS_ONLN 2> /dev/null || nproc --all)
JOBS=${JOBS:-$NCPU}
GPT_BATCHES_USER=${GPT_BATCHES:-}
USER_GPT_WARMUP=${GPT_WARMUP:-} USER_GPT_STEPS=${GPT_STEPS:-}
USER_VIT_WARMUP=${VIT_WARMUP:-} USER_VIT_STEPS=${VIT_STEPS:-}
GPT_BATCHES=${GPT_BATCHES:-32 16 8}
GPT_WARMUP=${GPT_WARMUP:-5} GPT_STEPS=${GPT_STEPS:-20}
VIT_WARMUP=${VIT_WARMUP:-3} VIT_STEPS=${VIT_STEPS:-48}
TORCH_COMPILE=${TORCH_COMPILE:-1} TORCH_VIT_COMPILE=${TORCH_VIT_COMPILE:-0}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-150} TESTGPU_TIMEOUT=${TESTGPU_TIMEOUT:-100}
MEMCHECK_TIMEOUT=${MEMCHECK_TIMEOUT:-45} GPT_RUN_TIMEOUT=${GPT_RUN_TIMEOUT:-75}
TORCH_GPT_TIMEOUT=${TORCH_GPT_TIMEOUT:-200} OP_TIMEOUT=${OP_TIMEOUT:-75}
VIT_RUN_TIMEOUT=${VIT_RUN_TIMEOUT:-60} TORCH_VIT_TIMEOUT=${TORCH_VIT_TIMEOUT:-120}
FAKE_OOM=${GPU_BENCH_FAKE_OOM:-}
RESERVE=5      # seconds kept back for the summary
MIN_RUN=10     # a run with less time than this left is skipped

# the model shapes: GPT-2 124M and the paper's ViT-small, or tiny ones for the dry run
if [ "$DRY" = 1 ]; then
    DEVICE=cpu TDEVICE=cpu
    GPT_L=2 GPT_H=4 GPT_C=64 GPT_T=64
    [ -n "$GPT_BATCHES_USER" ] || GPT_BATCHES="8 4 2"
    GPT_WARMUP=${USER_GPT_WARMUP:-2} GPT_STEPS=${USER_GPT_STEPS:-5}
    VIT_WARMUP=${USER_VIT_WARMUP:-2} VIT_STEPS=${USER_VIT_STEPS:-5}
    VIT_DIMS=(--dim=64 --depth=1 --heads=2 --mlp-dim=64 --batch=64)
    VIT_TORCH_DIMS=(--dim 64 --depth 1 --heads 2 --mlp-dim 64)
    VIT_B=64 VIT_TRAIN=5000 VIT_TEST=200 VIT_FLOPS_SHAPE="64 1 64"
    OP_ARGS=(--T "32,64,128" --tokens 65536 --dtype fp32 --gemm 256 --copy-mib 16 --reps 3 --warmup 1)
    OP_T=32,64,128 OP_TOKENS=65536
    TORCH_PRECISION=fp32 TORCH_VIT_PRECISION=fp32
    TORCH_COMPILE=0 TORCH_VIT_COMPILE=0
    GPU_BENCH_BUILD=${GPU_BENCH_BUILD:-0}
else
    DEVICE=cuda TDEVICE=cuda
    GPT_L=12 GPT_H=12 GPT_C=768 GPT_T=1024
    VIT_DIMS=()
    VIT_TORCH_DIMS=()
    VIT_B=512 VIT_TRAIN=50000 VIT_TEST=1000 VIT_FLOPS_SHAPE="512 6 512"
    OP_ARGS=()
    OP_T=256,1024,4096 OP_TOKENS=4194304
    TORCH_PRECISION=bf16 TORCH_VIT_PRECISION=bf16,tf32
    GPU_BENCH_BUILD=${GPU_BENCH_BUILD:-1}
fi
GPT_V=50257
TOKENS_N=2097152

for n in "$GPT_WARMUP" "$GPT_STEPS" "$VIT_WARMUP" "$VIT_STEPS" "$TOTAL_BUDGET"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "bench/gpu.sh: step counts and TOTAL_BUDGET must be whole numbers (got '$n')" >&2; exit 2; }
done
[ $((VIT_WARMUP + VIT_STEPS)) -le $((VIT_TRAIN / VIT_B)) ] ||
    { echo "bench/gpu.sh: VIT_WARMUP + VIT_STEPS must be at most $((VIT_TRAIN / VIT_B)) (one epoch's full batches)" >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "bench/gpu.sh: needs bash 5 or later (EPOCHREALTIME)" >&2; exit 2; }

# --- no GPU: one line, at once ---------------------------------------------------------
if [ "$DRY" != 1 ]; then
    if ! command -v nvidia-smi > /dev/null; then
        echo "bench/gpu.sh: no GPU: nvidia-smi not found (GPU_BENCH_DRY=1 runs the script's plumbing on the CPU)" >&2
        exit 1
    fi
    if ! gpu_list=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader 2>&1) || [ -z "$gpu_list" ]; then
        echo "bench/gpu.sh: no GPU: nvidia-smi lists none ($(printf '%s' "$gpu_list" | tail -n 1))" >&2
        exit 1
    fi
fi

OUT=${OUT:-bench/out/gpu-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || { echo "bench/gpu.sh: cannot create $OUT" >&2; exit 1; }
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/attnx-gpubench.XXXXXX")
mkdir -p "$work/runs"
RESULTS=$OUT/results.tsv
: > "$RESULTS"
exec > >(tee -a "$OUT/console.log") 2>&1
TEE_PID=$!
MEM_PID=""
cleanup() {
    [ -n "$MEM_PID" ] && kill "$MEM_PID" 2> /dev/null
    save_logs
    rm -rf "$work"
    exec 1>&- 2>&-
    wait "$TEE_PID" 2> /dev/null
}
trap cleanup EXIT
trap 'echo "bench/gpu.sh: interrupted"; exit 130' INT TERM

elapsed() { echo $((EPOCHSECONDS - T_START)); }
note() { echo "[$(date +%H:%M:%S) +$(elapsed)s] $*"; }
wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# tsv: TABLE then fields; the summary is made from this file
record() { local IFS=$'\t'; echo "$*" >> "$RESULTS"; }
# seconds a run may take: its cap, cut to the time left before the deadline;
# fails (prints 0) when under MIN_RUN are left
budget_for() {
    local left=$((TOTAL_BUDGET - RESERVE - $(elapsed)))
    local t=$(( $1 < left ? $1 : left ))
    if [ "$t" -lt "$MIN_RUN" ]; then echo 0; return 1; fi
    echo "$t"
}
# run_capped CAP LOG CMD...: CMD under timeout (its whole process group), output in
# LOG; sets RC (124: timed out, 125: not started for lack of time)
run_capped() {
    local cap=$1 log=$2 t; shift 2
    if ! t=$(budget_for "$cap"); then
        echo "not run: under ${MIN_RUN}s of the budget left" > "$log"
        RC=125; return 125
    fi
    timeout -k 5 "$t" "$@" > "$log" 2>&1
    RC=$?
    [ "$RC" -eq 137 ] && RC=124
    return "$RC"
}
last_line() { grep -v '^[[:space:]]*$' "$1" 2> /dev/null | tail -n 1 | cut -c1-200; }
# every run's log (not the data) into $OUT/logs.tar.gz, after each section
save_logs() {
    [ -d "$work" ] || return 0
    tar -czf "$OUT/logs.tar.gz.tmp" -C "$work" --exclude='./data' --exclude='*.bin' . 2> /dev/null &&
        mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}

SEC_NAME="" SEC_T0=0
section_begin() {
    SEC_NAME=$1 SEC_T0=$EPOCHSECONDS
    echo
    note "=== $SEC_NAME (budget left $((TOTAL_BUDGET - $(elapsed)))s)"
}
section_end() {   # STATUS text
    local secs=$((EPOCHSECONDS - SEC_T0))
    note "=== $SEC_NAME: $1 (${secs}s; total $(elapsed)s of $TOTAL_BUDGET)"
    record section "$SEC_NAME" "$secs" "$1"
    write_summary
    save_logs
}
section_skip() {   # NAME WHY
    echo
    note "=== $1: skipped: $2"
    record section "$1" 0 "skipped: $2"
}

# --- # a markdown table's field K ("| a | b |": K counts from 2) as a whole number with commas
md_commas() {
    awk -F'|' -v k="$1" 'BEGIN { OFS = "|" } { $k = " " fmtint($k) " "; print }
        function fmtint(x,   s, o) { gsub(/ /, "", x); if (x !~ /^[0-9.]+$/) return x
            s = sprintf("%.0f", x); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
            return s o }'
}
# summary.md, from results.tsv (also written after every section)
write_summary() {
    local s=$OUT/summary.md.tmp
    {
        echo "## $DATE - bench/gpu.sh on ${GPU_NAME:-?}, commit ${COMMIT:-?}"
        echo
        echo "| | |"
        echo "|---|---|"
        echo "| GPU | ${GPU_NAME:-?} ($GPU_KEY; dense peaks bf16 $PEAK_BF16, TF32 $PEAK_TF32, fp32 $PEAK_FP32 TFLOP/s) |"
        echo "| GPU details | compute capability ${GPU_CC:--}, ${GPU_MEM:--} MiB, power limit ${GPU_POWER:--} W, max SM clock ${GPU_CLOCK:--} MHz, ${MEM_IDLE:--} MiB used idle |"
        echo "| driver | ${DRIVER:--} (CUDA ${CUDA_VER:--}) |"
        echo "| nvcc | ${NVCC_VER:--}, NVCC_ARCH=\`${GPU_NVCC_ARCH:-}\` |"
        echo "| torch | ${TORCH_INFO:--} |"
        echo "| commit | ${COMMIT:-?} |"
        echo "| run | $(elapsed) s of the ${TOTAL_BUDGET} s budget; $NCPU host CPUs$([ "$DRY" = 1 ] && echo "; DRY RUN (GPU_BENCH_DRY=1): CPU, tiny shapes - not figures") |"
        if grep -q '^check' "$RESULTS"; then
            echo
            echo "| check | result | FAIL lines | counts |"
            echo "|---|---|---|---|"
            awk -F'\t' '$1 == "check" { printf "| %s | %s | %s | %s |\n", $2, $3, $4, $5 }' "$RESULTS"
        fi
        if grep -q '^gpt' "$RESULTS"; then
            echo
            echo "### GPT $GPT_DESC $([ "$DRY" = 1 ] && echo "(dry run: tiny; the real run is GPT-2 124M)" || echo "(GPT-2 124M)"), random tokens, --device=$DEVICE vs PyTorch"
            echo
            echo "| side | attention | precision | B | steps timed | ms/step (median) | tok/s | TFLOP/s | MFU (bf16 peak) | MFU (its precision's peak) | peak memory (MiB$([ "$DRY" = 1 ] && echo ", host rise")) | notes |"
            echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
            awk -F'\t' '$1 == "gpt" { a = ($3 == "x") ? "x, gamma 1" : $3
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, a, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$RESULTS" |
                md_commas 8
            echo
            echo "FLOPs/token = 6N + 6LCT = $(fmt_int "$GPT_FPT") (N = $(fmt_int "$GPT_N"): train_gpt's count, embeddings included, the tied head once, the vocabulary unpadded); TFLOP/s = tok/s x that; MFU against the dense peaks above. Precisions: ours bf16 = --dtype=bf16; tf32 = fp32 weights and activations, cuBLAS GEMMs in TF32 (TRAIN_TF32=1); fp32 = strict fp32 (TRAIN_TF32=0, the trainer's default). PyTorch bf16 = autocast, fp32 master weights. Warmup $GPT_WARMUP steps, then $GPT_STEPS timed; peak memory = nvidia-smi's memory.used, max of 0.2 s samples (the whole device)."
        fi
        if grep -qE '^(op|ceiling)' "$RESULTS"; then
            echo
            echo "### The attention op alone (causal, head size 64), forward and forward + backward"
            echo
            echo "| implementation | attention | T | B x NH | dtype | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s |"
            echo "|---|---|---|---|---|---|---|---|---|"
            awk -F'\t' '$1 == "op" { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RESULTS"
            echo
            echo "FLOPs: forward 4 B NH T^2 hs halved for the causal mask, backward 2.5 x forward (FlashAttention's convention); x = the same op then O - V (its FLOPs not counted). B x NH x T = $(fmt_int "$OP_TOKENS"). Median of CUDA-event timings."
            if grep -q '^ceiling' "$RESULTS"; then
                echo
                echo "| ceiling (measured, torch) | ms | rate |"
                echo "|---|---|---|"
                awk -F'\t' '$1 == "ceiling" { printf "| %s | %s | %s %s |\n", $2, $3, $4, $5 }' "$RESULTS"
            fi
        fi
        if grep -q '^vit' "$RESULTS"; then
            echo
            echo "### ViT-small (paper config: SPT + LSA, patch 4) on a CIFAR-shaped epoch: $VIT_DESC"
            echo
            echo "| side | attention | precision | B | steps timed | ms/step (median) | img/s | epoch s (extrapolated) | TFLOP/s (matmul) | of bf16 peak | peak memory (MiB) | notes |"
            echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
            awk -F'\t' '$1 == "vit" { a = ($3 == "x") ? "x, gamma 1" : $3
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, a, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$RESULTS" |
                md_commas 8
            echo
            echo "The epoch ($(fmt_int "$VIT_TRAIN") images, $VIT_EPOCH_STEPS steps of $VIT_B) is not run whole: $VIT_STEPS steps are timed after $VIT_WARMUP warmup steps and the epoch time is $(fmt_int "$VIT_TRAIN") / (img/s) (the test pass excluded). TFLOP/s counts the model's matmuls (bench/bench_util.py's vit_flops: $(fmt_int "$VIT_FPI") FLOPs per image, forward + backward). Ours: configs/vit_small_cifar10.conf (SET-Adam) with --epochs=1 --max-steps; PyTorch: Adam (no SET-Adam in torch), bf16 = autocast."
        fi
        echo
        echo "| section | seconds | status |"
        echo "|---|---|---|"
        awk -F'\t' '$1 == "section" { printf "| %s | %s | %s |\n", $2, $3, $4 }' "$RESULTS"
    } > "$s" && mv "$s" "$OUT/summary.md"
}

# --- GPU memory, sampled in the background ------------------------------------------
# nvidia-smi's memory.used every 0.2 s (MiB, the whole device); in the dry run the
# host's used memory instead (its rise over the run is reported)
mem_start() {
    MEM_FILE=$1
    if [ "$DRY" = 1 ]; then
        while :; do
            awk '/^MemTotal/ { t = $2 } /^MemAvailable/ { a = $2 } END { printf "%d\n", (t - a) / 1024 }' /proc/meminfo
            sleep 0.2
        done > "$MEM_FILE" 2> /dev/null &
    else
        nvidia-smi --id=0 --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$MEM_FILE" 2> /dev/null &
    fi
    MEM_PID=$!
}
mem_stop() {   # prints the peak: MiB (GPU), or the rise over the first sample (dry)
    [ -n "$MEM_PID" ] && kill "$MEM_PID" 2> /dev/null && wait "$MEM_PID" 2> /dev/null
    MEM_PID=""
    awk -v dry="$DRY" '$1 ~ /^[0-9]+$/ { v = $1 + 0; if (n++ == 0) first = v; if (v > max) max = v }
                       END { if (!n) print "-"; else if (dry == 1) print max - first; else print max }' "$MEM_FILE"
}

# --- formatting -----------------------------------------------------------------------
fmt_int() { awk -v x="$1" 'BEGIN { if (x == "" || x == "-") { print "-"; exit }
    s = sprintf("%.0f", x); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'; }
fmt_f() { awk -v x="$1" -v p="$2" 'BEGIN { if (x == "" || x == "-") print "-"; else printf "%.*f\n", p, x }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "-" || b == "" || b == "-" || b == 0) print "-"; else printf "%.1f%%\n", 100 * a / b }'; }
# a key=value field of a line
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<< " $2" | head -n 1; }

# --- the GPU, its kind and peaks ----------------------------------------------------
# Dense peak TFLOP/s: bf16 tensor, tf32 tensor, fp32 non-tensor. Sources: NVIDIA
# H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/; H100 SXM:
# BF16 1,979*, TF32 989*, FP32 67; H100 NVL: 1,671*, 835*, 60; H100 PCIe (its
# product brief and the earlier datasheet): 1,513*, 756*, 51), NVIDIA H200
# datasheet (nvidia.com/en-us/data-center/h200/; H200 SXM: the H100 SXM's
# figures; H200 NVL: 1,671*, 835*, 60) and the A100 datasheet (dense 312, 156,
# 19.5). * = "with sparsity", twice the dense rate: halved here. The datasheet
# figures are at boost clock; a lent H200 measured ~790 TFLOP/s on a bf16
# 8192^3 matmul (the op section measures it again: "ceiling" rows).
peaks_for() {   # GPU name -> "KEY BF16 TF32 FP32"
    case "$1" in
        *GH200*) echo "GH200(assumed-H100-SXM) 989.5 494.5 67" ;;
        *H200*NVL*) echo "H200-NVL 835.5 417.5 60" ;;
        *H200*) echo "H200-SXM 989.5 494.5 67" ;;
        *H100*NVL*) echo "H100-NVL 835.5 417.5 60" ;;
        *H100*PCIe*) echo "H100-PCIe 756.5 378 51" ;;
        *H100*) echo "H100-SXM 989.5 494.5 67" ;;
        *A100*) echo "A100 312 156 19.5" ;;
        *) echo "unknown(assumed-H100-SXM) 989.5 494.5 67" ;;
    esac
}
peak_of() {   # precision -> TFLOP/s
    case "$1" in bf16*) echo "$PEAK_BF16" ;; tf32) echo "$PEAK_TF32" ;; *) echo "$PEAK_FP32" ;; esac
}

# --- python: torch for the PyTorch side, any python3 for the data --------------------
PY="" TORCH_OK=0 TORCH_WHY=""
if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3 /usr/bin/python3 /opt/torch/.venv/bin/python3); fi
for p in "${candidates[@]}"; do
    command -v "$p" > /dev/null 2>&1 || continue
    [ -n "$PY" ] || PY=$p
    if "$p" -c 'import torch' > /dev/null 2>&1; then PY=$p TORCH_OK=1; break; fi
done
[ -n "$PY" ] || TORCH_WHY="no python3"
[ "$TORCH_OK" = 1 ] || TORCH_WHY=${TORCH_WHY:-"$PY has no torch (set PYTHON=)"}

# ======================================================================================
section_begin info
COMMIT="$(git rev-parse --short HEAD 2> /dev/null || echo '?')$(git diff --quiet HEAD 2> /dev/null || echo ' (+ uncommitted changes)')"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
if [ "$DRY" = 1 ]; then
    GPU_NAME="none (GPU_BENCH_DRY=1: the CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
    DRIVER="-" GPU_CC="-" GPU_MEM="-" GPU_POWER="-" GPU_CLOCK="-" MEM_IDLE="-"
    read -r GPU_KEY PEAK_BF16 PEAK_TF32 PEAK_FP32 <<< "$(peaks_for H100)"
    GPU_KEY="dry run: MFU against the $GPU_KEY peaks, for the plumbing only"
    GPU_NVCC_ARCH=${GPU_NVCC_ARCH:-"-gencode arch=compute_90,code=sm_90"}
else
    nvidia-smi > "$work/nvidia-smi.txt" 2>&1
    nvidia-smi -q > "$work/nvidia-smi-q.txt" 2>&1
    q() { nvidia-smi --id=0 --query-gpu="$1" --format=csv,noheader,nounits 2> /dev/null | head -n 1 | sed 's/^ *//; s/ *$//'; }
    GPU_NAME=$(q name) DRIVER=$(q driver_version) GPU_CC=$(q compute_cap) GPU_MEM=$(q memory.total)
    GPU_POWER=$(q power.limit) GPU_CLOCK=$(q clocks.max.sm) MEM_IDLE=$(q memory.used)
    read -r GPU_KEY PEAK_BF16 PEAK_TF32 PEAK_FP32 <<< "$(peaks_for "$GPU_NAME")"
    # the form factor where the name leaves it open: a 700 W H100/H200 is SXM
    cc=${GPU_CC//./}
    [[ $cc =~ ^[0-9]+$ ]] || cc=90
    GPU_NVCC_ARCH=${GPU_NVCC_ARCH:-"-gencode arch=compute_$cc,code=sm_$cc"}
    echo "GPUs: $(tr '\n' ';' <<< "$gpu_list")"
fi
CUDA_VER=$(sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' "$work/nvidia-smi.txt" 2> /dev/null | head -n 1)
NVCC_BIN=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2> /dev/null || true)
NVCC_VER=$([ -n "$NVCC_BIN" ] && "$NVCC_BIN" --version | sed -n 's/.*release \([^,]*\), \(V[0-9.]*\).*/\1 (\2)/p')
NVCC_VER=${NVCC_VER:-none}
TORCH_INFO="none ($TORCH_WHY)"
if [ "$TORCH_OK" = 1 ]; then
    TORCH_INFO=$(timeout 60 "$PY" bench/torch_gpu.py info 2>&1 | grep '^INFO' | head -n 1)
    TORCH_VER=$(field torch "$TORCH_INFO")
    if [ "$DRY" != 1 ] && [ "$(field cuda_available "$TORCH_INFO")" != 1 ]; then
        TORCH_OK=0 TORCH_WHY="torch $TORCH_VER sees no CUDA device"
    fi
    TORCH_INFO="$TORCH_VER ($PY; compile $(field compile "$TORCH_INFO"), sdpa $(field sdpa "$TORCH_INFO"))"
fi
{
    echo "date        $DATE"
    echo "commit      $COMMIT"
    echo "gpu         $GPU_NAME  [$GPU_KEY: dense bf16 $PEAK_BF16, tf32 $PEAK_TF32, fp32 $PEAK_FP32 TFLOP/s]"
    echo "            compute capability $GPU_CC, $GPU_MEM MiB, power limit $GPU_POWER W, max SM clock $GPU_CLOCK MHz, $MEM_IDLE MiB used idle"
    echo "driver      $DRIVER (CUDA ${CUDA_VER:--})"
    echo "nvcc        $NVCC_VER; NVCC_ARCH=$GPU_NVCC_ARCH"
    echo "torch       $TORCH_INFO"
    echo "host        $NCPU CPUs; OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}; budget ${TOTAL_BUDGET}s; dry=$DRY"
} | tee "$work/info.txt"
section_end ok

# ======================================================================================
TRAIN_GPT=./train_gpt TRAIN_VIT=./train_vit BUILD_OK=0
if wants build && [ "$GPU_BENCH_BUILD" = 1 ]; then
    section_begin build
    # shellcheck disable=SC2086  # JOBS is one word
    if run_capped "$BUILD_TIMEOUT" "$work/build.log" make -j$JOBS NVCC_ARCH="$GPU_NVCC_ARCH"; then
        BUILD_OK=1
        grep '^note:' "$work/build.log"
        section_end ok
    else
        tail -n 20 "$work/build.log"
        section_end "FAILED (rc $RC): $(last_line "$work/build.log")"
    fi
else
    [ -x "$TRAIN_GPT" ] && [ -x "$TRAIN_VIT" ] && BUILD_OK=1
    section_skip build "GPU_BENCH_BUILD=0 or not in ONLY: using ./train_gpt and ./train_vit as they are ($([ "$BUILD_OK" = 1 ] && echo present || echo MISSING))"
fi
if [ "$BUILD_OK" = 1 ] && ! "$TRAIN_GPT" --help > "$work/train_gpt_help.txt" 2>&1; then
    BUILD_OK=0
    echo "./train_gpt --help failed: $(last_line "$work/train_gpt_help.txt")"
fi
"$TRAIN_VIT" --help > "$work/train_vit_help.txt" 2>&1 || true
# ours' precision: --dtype=bf16 where the trainer lists it, else fp32 storage with
# TF32 GEMMs (TRAIN_TF32=1) as the main runs; "extra" adds the others. Where
# --dtype exists at all, the fp32 runs pass --dtype=fp32 (its default, auto,
# would pick bf16 on a GPU that has it)
has_dtype() { grep -qE -- '--dtype[= ]' "$1" 2> /dev/null && echo 1 || echo 0; }
has_bf16() { grep -E -- '--dtype[= ]' "$1" 2> /dev/null | grep -q bf16 && echo 1 || echo 0; }
GPT_DTYPE=$(has_dtype "$work/train_gpt_help.txt") GPT_BF16=$(has_bf16 "$work/train_gpt_help.txt")
VIT_DTYPE=$(has_dtype "$work/train_vit_help.txt") VIT_BF16=$(has_bf16 "$work/train_vit_help.txt")
if [ "$GPT_BF16" = 1 ]; then GPT_MAIN=bf16 GPT_EXTRA="tf32 fp32"; else GPT_MAIN=tf32 GPT_EXTRA=fp32; fi
if [ "$VIT_BF16" = 1 ]; then VIT_MAIN=bf16; else VIT_MAIN=tf32; fi
if [ "$BUILD_OK" = 1 ]; then
    if [ "$GPT_BF16" = 1 ]; then
        note "ours: GPT in bf16 (--dtype=bf16), ViT in $VIT_MAIN; extra: GPT in $GPT_EXTRA"
    else
        note "ours: train_gpt --help lists no --dtype=bf16: GPT in fp32 storage with TF32 GEMMs (TRAIN_TF32=1), ViT in $VIT_MAIN; extra: strict fp32"
    fi
    [ "$DRY" = 1 ] && note "dry run: the CPU backends are fp32 - no --dtype passed, precision labels are the plan's only"
fi
# the environment and flags of a precision: PRECISION HAS_DTYPE -> words
# (NAME=VALUE for env(1), then --flags)
prec_args() {
    local d=""
    [ "$2" = 1 ] && d=" --dtype=fp32"
    case "$1" in
        bf16) echo "TRAIN_TF32=1 --dtype=bf16" ;;
        tf32) echo "TRAIN_TF32=1$d" ;;
        *) echo "TRAIN_TF32=0$d" ;;
    esac
}

# ======================================================================================
DATA_OK=0
if wants data || wants gpt || wants torch-gpt || wants vit || wants torch-vit || wants memcheck; then
    section_begin data
    if [ -z "$PY" ]; then
        section_end "FAILED: no python3 to write the data"
    elif run_capped 90 "$work/data.log" "$PY" bench/torch_gpu.py tokens "$work/data" "$GPT_V" "$TOKENS_N" &&
         run_capped 90 "$work/data_cifar.log" "$PY" bench/torch_gpu.py cifar "$work/data/cifar" "$VIT_TRAIN" "$VIT_TEST"; then
        DATA_OK=1
        section_end "ok: $(fmt_int "$TOKENS_N") tokens (vocab $GPT_V), $(fmt_int "$VIT_TRAIN") + $(fmt_int "$VIT_TEST") CIFAR-shaped images"
    else
        section_end "FAILED: $(last_line "$work/data.log") $(last_line "$work/data_cifar.log")"
    fi
fi

# ======================================================================================
if ! wants test; then
    section_skip test "not in ONLY"
elif [ "$DRY" = 1 ]; then
    section_skip test "dry run (make test-gpu needs a GPU; tests/test_gpu_runs.sh would skip)"
elif [ "$BUILD_OK" != 1 ]; then
    section_skip test "no build"
else
    section_begin test
    run_capped "$TESTGPU_TIMEOUT" "$work/test-gpu.log" make test-gpu NVCC_ARCH="$GPU_NVCC_ARCH"
    trc=$RC
    grep -E 'passed, [0-9]+ failed|^FAIL|SKIPPED|skipped' "$work/test-gpu.log" | head -n 40
    summary=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$work/test-gpu.log" | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//; s/;/; /g')
    how="make test-gpu"
    # make test-gpu runs test_gpu and test_gpu_runs.sh only after check-kernels passes
    if [ "$trc" -ne 0 ] && [ "$trc" -ne 124 ] && ! grep -q '^test_gpu_runs:' "$work/test-gpu.log" &&
       grep -q '^FAIL check_kernels' "$work/test-gpu.log"; then
        note "make test-gpu stopped at check-kernels (which needs no GPU): test_gpu and test_gpu_runs.sh directly"
        bdir=$(cat build/.flavour 2> /dev/null || echo build)
        run_capped "$TESTGPU_TIMEOUT" "$work/test-gpu-direct.log" bash -c \
            "make '$bdir/test_gpu' NVCC_ARCH='$GPU_NVCC_ARCH' && TRAIN_TF32=0 '$bdir/test_gpu' && TRAIN_TF32=0 tests/test_gpu_runs.sh"
        trc=$RC how="test_gpu + test_gpu_runs.sh (check-kernels failed)"
        grep -E 'passed, [0-9]+ failed|^FAIL|SKIPPED|skipped' "$work/test-gpu-direct.log" | head -n 40
        summary="$summary; direct: $(grep -E '[0-9]+ passed, [0-9]+ failed' "$work/test-gpu-direct.log" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
    fi
    nfail=$(cat "$work"/test-gpu*.log | grep -c '^FAIL')
    case $trc in
        0) status="passed" ;;
        124) status="TIMED OUT after the cap" ;;
        125) status="not run (budget)" ;;
        *) status="FAILED (rc $trc)" ;;
    esac
    record check "$how" "$status" "$nfail FAIL lines" "${summary:--}"
    section_end "$status"
fi

# ======================================================================================
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null || true)
if ! wants memcheck; then
    section_skip memcheck "not in ONLY"
elif [ -z "$CS" ]; then
    section_skip memcheck "compute-sanitizer not found"
    record check "compute-sanitizer memcheck" "not run" "-" "compute-sanitizer not found"
elif [ "$BUILD_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip memcheck "no build or no data"
else
    section_begin memcheck
    read -r -a pa <<< "$(prec_args "$GPT_MAIN" "$GPT_DTYPE")"
    env_words=() flag_words=()
    for w in "${pa[@]}"; do if [[ $w == --* ]]; then flag_words+=("$w"); else env_words+=("$w"); fi; done
    run_capped "$MEMCHECK_TIMEOUT" "$work/memcheck.log" env "${env_words[@]}" "$CS" --tool memcheck --leak-check full \
        --error-exitcode 9 "$TRAIN_GPT" --device="$DEVICE" --data="$work/data/tok_train.bin" \
        --val-data="$work/data/tok_val.bin" --vocab=$GPT_V --layers=2 --heads=1 --embd=64 --seq=64 --batch=2 \
        --steps=3 --eval-every=1000000 --eval-batches=1 --log-every=1 --attn=x --gamma=1 "${flag_words[@]}" \
        --out="$work/runs/memcheck" --overwrite=1
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$work/memcheck.log" | tail -n 1)
    case $RC in
        0) status="passed: ${errs:-?} errors (3 steps, L2 C64 H1 (head size 64) T64 B2, vocab 50257, x, $GPT_MAIN)" ;;
        9) status="ERRORS: $errs reported (see memcheck.log)" ;;
        124) status="TIMED OUT" ;;
        *) status="could not run (rc $RC): $(grep -v '^=========' "$work/memcheck.log" | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-200)" ;;
    esac
    grep -E 'ERROR SUMMARY|Invalid|Leaked|error' "$work/memcheck.log" | head -n 10
    record check "compute-sanitizer memcheck" "$status" "-" "-"
    section_end "$status"
fi

# ======================================================================================
# GPT-2 124M: FLOPs per token 6N + 6LCT, N as train_gpt counts it (see the header)
GPT_N=$((GPT_V * GPT_C + GPT_T * GPT_C + GPT_L * (12 * GPT_C * GPT_C + 13 * GPT_C) + 2 * GPT_C))
GPT_FPT=$((6 * GPT_N + 6 * GPT_L * GPT_C * GPT_T))
GPT_SHAPE=("--layers=$GPT_L" "--heads=$GPT_H" "--embd=$GPT_C" "--seq=$GPT_T" "--vocab=$GPT_V")
GPT_DESC="L$GPT_L H$GPT_H C$GPT_C T$GPT_T V$GPT_V"
GPT_B_CHOSEN=""

# median ms and count of train_gpt's "step k/S | ... | X ms |" lines with k > W
gpt_step_ms() {
    awk -v w="$2" '$1 == "step" && $2 ~ /^[0-9]+\/[0-9]+$/ {
            split($2, a, "/"); if (a[1] + 0 <= w) next
            for (i = 3; i <= NF; i++) if ($i == "ms") print $(i - 1) }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "- 0"; exit }
             m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, NR }'
}
# one GPT row of the summary: side attention precision B steps ms tok/s mem note
gpt_row() {
    local side=$1 attn=$2 prec=$3 b=$4 steps=$5 ms=$6 mem=$7 note=${8%; } tps
    tps=$(awk -v b="$b" -v t="$GPT_T" -v ms="$ms" 'BEGIN { if (ms == "-" || ms == "") print "-"; else printf "%.1f\n", b * t / ms * 1e3 }')
    local achieved
    achieved=$(awk -v r="$tps" -v f="$GPT_FPT" 'BEGIN { if (r == "-") print "-"; else printf "%.3f\n", r * f / 1e12 }')
    record gpt "$side" "$attn" "$prec" "$b" "$steps" "$ms" "$tps" "$achieved" \
        "$(pct "$achieved" "$PEAK_BF16")" "$(pct "$achieved" "$(peak_of "$prec")")" "$mem" "$note"
}
# ours' own peak-memory line, for the notes
ours_peak() {
    local l
    l=$(grep -m1 '^peak GPU memory' "$1")
    if [ -n "$l" ]; then
        sed -n 's/^peak GPU memory: \([0-9.]*\) MiB allocated by the trainer, \([0-9.]*\) MiB in use.*/trainer alloc peak \1 MiB, device in use \2 MiB (its own line); /p' <<< "$l"
    else
        l=$(grep -i -m1 'peak' "$1" | cut -c1-100)
        [ -n "$l" ] && echo "ours: '$l'; "
    fi
}
# the trainer's own "dtype: X (...)" line, where it disagrees with the plan
dtype_check() {   # LOG PRECISION
    local said want=fp32
    said=$(sed -n 's/^dtype: \([a-z0-9]*\).*/\1/p' "$1" | head -n 1)
    [ "$2" = bf16 ] && want=bf16
    if [ -n "$said" ] && [ "$said" != "$want" ]; then
        echo "THE TRAINER RAN $said: $(grep -m1 '^dtype:' "$1" | cut -c1-120); "
    fi
}
attn_words() { if [ "$1" = x ]; then echo "--attn=x --gamma=1"; else echo "--attn=std"; fi; }

# ours_gpt PRECISION ATTN: the first batch of GPT_BATCHES that fits, timed
ours_gpt() {
    local prec=$1 attn=$2 tried="" b dir ms n mem pa env_words=() flag_words=() w
    read -r -a pa <<< "$(prec_args "$prec" "$GPT_DTYPE")"
    for w in "${pa[@]}"; do if [[ $w == --* ]]; then flag_words+=("$w"); else env_words+=("$w"); fi; done
    [ "$DRY" = 1 ] && flag_words=()   # the CPU backends are fp32
    for b in $GPT_BATCHES; do
        dir=$work/runs/gpt_ours_${prec}_${attn}_B$b
        note "ours: GPT $GPT_DESC B=$b $attn $prec"
        mem_start "$dir.mem"
        # shellcheck disable=SC2046  # attn_words is two flags
        run_capped "$GPT_RUN_TIMEOUT" "$dir.log" env "${env_words[@]}" "$TRAIN_GPT" --device="$DEVICE" "${GPT_SHAPE[@]}" \
            --data="$work/data/tok_train.bin" --val-data="$work/data/tok_val.bin" --batch="$b" \
            --steps=$((GPT_WARMUP + GPT_STEPS)) --log-every=1 --eval-every=1000000000 --eval-batches=1 \
            --lr=6e-4 --warmup=0 --schedule=constant $(attn_words "$attn") "${flag_words[@]}" \
            --out="$dir" --overwrite=1
        local rc=$RC
        mem=$(mem_stop)
        if [ -n "$FAKE_OOM" ] && [ "$b" = "$FAKE_OOM" ]; then
            echo "error: (GPU_BENCH_FAKE_OOM) cannot allocate: 123 MiB free of 456 MiB" >> "$dir.log"; rc=1
        fi
        read -r ms n <<< "$(gpt_step_ms "$dir.log" "$GPT_WARMUP")"
        if [ "$rc" -eq 0 ] || { [ "$rc" -eq 124 ] && [ "$n" -ge 3 ]; }; then
            local why=""
            [ "$DRY" = 1 ] && why="dry: CPU, fp32; "
            [ "$rc" -eq 124 ] && why="timed out: $n of $GPT_STEPS timed steps; "
            why+=$(ours_peak "$dir.log")
            why+=$(dtype_check "$dir.log" "$prec")
            [ "$(grep -m1 -o '[0-9.]*M parameters' "$dir.log")" = "$(awk -v n="$GPT_N" 'BEGIN { printf "%.2fM parameters", n / 1e6 }')" ] ||
                why+="param count differs from N=$GPT_N; "
            gpt_row ours "$attn" "$prec" "$b" "$n" "$ms" "$mem" "${tried}${why}"
            note "ours: $attn $prec B=$b: median $ms ms/step over $n steps, peak $mem MiB"
            OURS_B=$b
            return 0
        fi
        if grep -qiE 'MiB free of|out of memory' "$dir.log"; then
            note "B=$b does not fit: $(last_line "$dir.log")"
            tried+="B=$b out of memory; "
            continue
        fi
        local why
        case $rc in 124) why="timed out with $n timed steps" ;; 125) why="not run (budget)" ;;
                    *) why="failed (rc $rc): $(last_line "$dir.log")" ;; esac
        note "ours: $attn $prec B=$b $why"
        gpt_row ours "$attn" "$prec" "$b" 0 - "$mem" "${tried}$why"
        OURS_B=""
        return 1
    done
    gpt_row ours "$attn" "$prec" - 0 - - "${tried}no batch of '$GPT_BATCHES' fits"
    OURS_B=""
    return 1
}

if ! wants gpt; then
    section_skip gpt "not in ONLY"
elif [ "$BUILD_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip gpt "no build or no data"
else
    section_begin gpt
    for attn in std x; do
        ours_gpt "$GPT_MAIN" "$attn"
        [ "$attn" = std ] && GPT_B_CHOSEN=${OURS_B:-}
    done
    section_end "done"
fi

# ======================================================================================
# torch_gpu.py's RESULT line of a kind and attention -> its fields
torch_result() { grep "^RESULT kind=$1 attn=$2 " "$3" 2> /dev/null | tail -n 1; }
if ! wants torch-gpt; then
    section_skip torch-gpt "not in ONLY"
elif [ "$TORCH_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip torch-gpt "${TORCH_WHY:-no data}"
    record gpt torch - - - 0 - - - - - - "skipped: ${TORCH_WHY:-no data}"
else
    section_begin torch-gpt
    todo="std x" tried=""
    start=${GPT_B_CHOSEN:-${GPT_BATCHES%% *}}
    for b in $GPT_BATCHES; do
        [ "$b" -gt "$start" ] && continue
        [ -n "$todo" ] || break
        log=$work/runs/gpt_torch_B$b.log
        note "PyTorch: GPT $GPT_DESC B=$b attn ${todo// /,} $TORCH_PRECISION compile=$TORCH_COMPILE"
        mem_start "$work/runs/gpt_torch_B$b.mem"
        run_capped "$TORCH_GPT_TIMEOUT" "$log" env PYTHONUNBUFFERED=1 "$PY" bench/torch_gpu.py gpt \
            --data "$work/data/tok_train.bin" --vocab $GPT_V --layers $GPT_L --heads $GPT_H --embd $GPT_C \
            --seq $GPT_T --batch "$b" --attn "${todo// /,}" --gamma 1 --warmup "$GPT_WARMUP" --steps "$GPT_STEPS" \
            --precision "$TORCH_PRECISION" --compile "$TORCH_COMPILE" --device "$TDEVICE"
        rc=$RC
        mem=$(mem_stop)
        grep -E '^(RESULT|OOM)' "$log"
        left=""
        for attn in $todo; do
            r=$(torch_result gpt "$attn" "$log")
            if [ -n "$r" ]; then
                n=""
                [ "$b" != "$start" ] && n="smaller B than ours (B=$start did not fit); "
                [ "$(field compiled "$r")" = 1 ] || n+="eager (not compiled); "
                n+="$(field sdpa "$r") attention, $(field optim "$r"); first step$([ "$(field compiled "$r")" = 1 ] && echo " (compile)") $(field first_step_s "$r") s; torch alloc peak $(field peak_alloc_mib "$r") MiB, reserved $(field peak_reserved_mib "$r") MiB"
                gpt_row torch "$attn" "$(field precision "$r")" "$b" "$(field steps "$r")" "$(field ms_median "$r")" "$mem" "$tried$n"
            elif grep -q "^OOM kind=gpt attn=$attn " "$log"; then
                left+=" $attn"
            else
                why="failed (rc $rc): $(last_line "$log")"
                [ "$rc" -eq 124 ] && why="timed out after ${TORCH_GPT_TIMEOUT}s cap (torch.compile?)"
                [ "$rc" -eq 125 ] && why="not run (budget)"
                gpt_row torch "$attn" "$TORCH_PRECISION" "$b" 0 - "$mem" "$tried$why"
            fi
        done
        [ -n "$left" ] && tried+="B=$b out of memory; "
        todo=${left# }
    done
    for attn in $todo; do gpt_row torch "$attn" "$TORCH_PRECISION" - 0 - - "${tried}no batch fits"; done
    section_end "done"
fi

# ======================================================================================
if ! wants op; then
    section_skip op "not in ONLY"
else
    section_begin op
    if [ "$TORCH_OK" = 1 ]; then
        run_capped "$OP_TIMEOUT" "$work/op_torch.log" env PYTHONUNBUFFERED=1 "$PY" bench/torch_gpu.py op \
            --device "$TDEVICE" "${OP_ARGS[@]}"
        grep -E '^(RESULT|OOM)' "$work/op_torch.log"
        if [ "$RC" -ne 0 ]; then
            note "PyTorch op bench: rc $RC: $(last_line "$work/op_torch.log")"
            why="rc $RC: $(last_line "$work/op_torch.log")"
            [ "$RC" -eq 124 ] && why="timed out (cap ${OP_TIMEOUT}s)"
            [ "$RC" -eq 125 ] && why="not run (budget)"
            record op "torch: $why" - - - - - - - -
        fi
        while read -r line; do
            case $line in
                "RESULT kind=op "*)
                    record op "$(field impl "$line")" "$(field attn "$line")" "$(field T "$line")" \
                        "$(field B "$line")x$(field NH "$line")" "$(field dtype "$line")" "$(field fwd_ms "$line")" \
                        "$(field fwd_tflops "$line")" "$(field fwdbwd_ms "$line")" "$(field fwdbwd_tflops "$line")" ;;
                "RESULT kind=ceiling "*)
                    record ceiling "$(field what "$line")" "$(field ms "$line")" \
                        "$(field tflops "$line")$(field gb_per_s "$line")" "$(case $line in *tflops=*) echo TFLOP/s ;; *) echo GB/s ;; esac)" ;;
            esac
        done < "$work/op_torch.log"
    else
        record op "torch: skipped ($TORCH_WHY)" - - - - - - - -
    fi
    # ---- ours: bench/attention_bench.c (build/bench_attention, built by make with
    # nvcc), or the command OURS_ATTN_BENCH names; its "ATTN_RESULT attn=.. T=..
    # B=.. NH=.. fwd_ms=.. fwdbwd_ms=.." lines come into the same table)
    OURS_ATTN_BENCH=${OURS_ATTN_BENCH:-}
    if [ -z "$OURS_ATTN_BENCH" ]; then
        for c in build/bench_attention ./bench_attention; do
            if [ -x "$c" ]; then OURS_ATTN_BENCH=$c; break; fi
        done
    fi
    if [ -z "$OURS_ATTN_BENCH" ]; then
        echo "ours: no standalone attention bench built yet"
        record op "ours: no standalone attention bench built yet (hook: OURS_ATTN_BENCH)" - - - - - - - -
    elif [ "$BUILD_OK" != 1 ] && [[ $OURS_ATTN_BENCH != */* || ! -x $OURS_ATTN_BENCH ]]; then
        record op "ours: $OURS_ATTN_BENCH not run (no build)" - - - - - - - -
    else
        # shellcheck disable=SC2086  # OURS_ATTN_BENCH may be a command with arguments
        run_capped "$OP_TIMEOUT" "$work/op_ours.log" env ATTN_T="$OP_T" ATTN_HS=64 ATTN_TOKENS="$OP_TOKENS" \
            ATTN_DEVICE="$DEVICE" $OURS_ATTN_BENCH
        grep '^ATTN_RESULT' "$work/op_ours.log"
        nres=0
        while read -r line; do
            T=$(field T "$line") B=$(field B "$line") NH=$(field NH "$line")
            f=$(awk -v b="$B" -v h="$NH" -v t="$T" 'BEGIN { print 4 * b * h * t * t * 64 / 2 }')
            fm=$(field fwd_ms "$line") fbm=$(field fwdbwd_ms "$line")
            record op "ours: $OURS_ATTN_BENCH" "$(field attn "$line")" "$T" "${B}x$NH" "$(field dtype "$line")" "$fm" \
                "$(awk -v f="$f" -v m="$fm" 'BEGIN { if (m + 0 > 0) printf "%.1f", f / m / 1e9; else print "-" }')" "$fbm" \
                "$(awk -v f="$f" -v m="$fbm" 'BEGIN { if (m + 0 > 0) printf "%.1f", 3.5 * f / m / 1e9; else print "-" }')"
            nres=$((nres + 1))
        done < <(grep '^ATTN_RESULT' "$work/op_ours.log")
        [ "$nres" -gt 0 ] || record op "ours: $OURS_ATTN_BENCH (rc $RC, no ATTN_RESULT lines: $(last_line "$work/op_ours.log"))" - - - - - - - -
    fi
    # ---- the forward kernel's versions (dev/cuda/flash_forward.cu: v1 loads
    # through registers, v2 the backend's staged cp.async tiles; checked against
    # each other bit for bit and against a double reference as they run)
    if [ -x build/dev_flash_forward ]; then
        # (a quarter of the tokens: its random inputs and checks run on the host)
        run_capped "$OP_TIMEOUT" "$work/op_dev.log" env DEV_T="$OP_T" DEV_TOKENS=$((OP_TOKENS / 4)) \
            build/dev_flash_forward
        checks=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$work/op_dev.log" | tail -n 1)
        grep -E '^(FLASH_FWD|FAIL)' "$work/op_dev.log"
        while read -r line; do
            record op "ours: dev/cuda flash forward $(field version "$line") (${checks:-rc $RC})" std \
                "$(field T "$line")" "$(field B "$line")x$(field NH "$line")" bf16 "$(field ms "$line")" \
                "$(field tflops "$line")" - -
        done < <(grep '^FLASH_FWD' "$work/op_dev.log")
    fi
    section_end "done"
fi

# ======================================================================================
# ViT-small: model FLOPs per image as bench/bench_util.py counts them (matmuls only,
# forward + backward = 3 x forward, the T x T products in full), for an
# achieved-TFLOP/s figure
read -r _vb VIT_D VIT_L VIT_M <<< "1 $VIT_FLOPS_SHAPE"
VIT_FPI=$(awk -v D="$VIT_D" -v L="$VIT_L" -v M="$VIT_M" 'BEGIN { N = 64; T = 65; PD = 240
    f = 2 * N * PD * D + L * (2 * T * (3 * D * D + D * D + 2 * D * M) + 2 * (2 * T * T * D)) + 2 * D * 10
    printf "%.0f\n", 3 * f }')
VIT_EPOCH_STEPS=$(( (VIT_TRAIN + VIT_B - 1) / VIT_B ))
VIT_DESC="$(fmt_int "$VIT_TRAIN") images 32x32x3, B$VIT_B, dim $VIT_D depth $VIT_L MLP $VIT_M"
vit_row() {   # side attn prec B steps ms mem note
    local ips epoch tf note=${8%; }
    ips=$(awk -v b="$4" -v ms="$6" 'BEGIN { if (ms == "-" || ms == "") print "-"; else printf "%.1f\n", b / ms * 1e3 }')
    epoch=$(awk -v r="$ips" -v n="$VIT_TRAIN" 'BEGIN { if (r == "-") print "-"; else printf "%.1f\n", n / r }')
    tf=$(awk -v r="$ips" -v f="$VIT_FPI" 'BEGIN { if (r == "-") print "-"; else printf "%.1f\n", r * f / 1e12 }')
    record vit "$1" "$2" "$3" "$4" "$5" "$6" "$ips" "$epoch" "$tf" "$(pct "$tf" "$PEAK_BF16")" "$7" "$note"
}
stamp_lines() { local line; while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
# median ms per step, and the count, from the arrival times of train_vit's
# progress lines of steps W..W+N ("STAMP epoch e/E | step k/S | ...")
vit_step_ms() {
    awk -v w="$2" '$2 == "epoch" && $5 == "step" { split($6, a, "/"); s = $1; gsub(",", ".", s); t[a[1] + 0] = s }
        END { for (k = w + 1; (k in t) && ((k - 1) in t); k++) printf "%.3f\n", (t[k] - t[k - 1]) * 1e3 }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "- 0"; exit }
             m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, NR }'
}
ours_vit() {   # PRECISION ATTN AUG(0|1)
    local prec=$1 attn=$2 aug=$3 dir pa env_words=() flag_words=() w augf=(--randaug=0 --crop=0 --flip=0) ms n mem t
    read -r -a pa <<< "$(prec_args "$prec" "$VIT_DTYPE")"
    for w in "${pa[@]}"; do if [[ $w == --* ]]; then flag_words+=("$w"); else env_words+=("$w"); fi; done
    [ "$DRY" = 1 ] && flag_words=()
    [ "$aug" = 1 ] && augf=()
    dir=$work/runs/vit_ours_${prec}_${attn}_aug$aug
    note "ours: ViT-small $VIT_DESC $attn $prec augmentation=$aug"
    if ! t=$(budget_for "$VIT_RUN_TIMEOUT"); then
        vit_row ours "$attn" "$prec" "$VIT_B" 0 - - "not run (budget)"; return 1
    fi
    mem_start "$dir.mem"
    # shellcheck disable=SC2046
    timeout -k 5 "$t" env "${env_words[@]}" "$TRAIN_VIT" --config=configs/vit_small_cifar10.conf \
        --dataset=cifar10 --data-dir="$work/data/cifar" --epochs=1 --max-steps=$((VIT_WARMUP + VIT_STEPS)) \
        --log-every=1 "${augf[@]}" $(attn_words "$attn") "${VIT_DIMS[@]}" "${flag_words[@]}" --device="$DEVICE" \
        --out="$dir" --overwrite=1 2>&1 | stamp_lines > "$dir.log"
    local rc=${PIPESTATUS[0]}
    mem=$(mem_stop)
    read -r ms n <<< "$(vit_step_ms "$dir.log" "$VIT_WARMUP")"
    local why="$n of the epoch's $VIT_EPOCH_STEPS steps timed (after $VIT_WARMUP), epoch extrapolated"
    [ "$aug" = 1 ] && why+="; paper augmentation on (RandAugment 2,14, crop 4, flip; on the host)"
    [ "$aug" = 1 ] || why+="; no augmentation"
    [ "$DRY" = 1 ] && why+="; dry: CPU, fp32"
    why+=$(dtype_check "$dir.log" "$prec" | sed 's/^/; /; s/; $//')
    why+="; SET-Adam, dropout 0.1"
    local peak
    peak=$(ours_peak "$dir.log")
    [ -n "$peak" ] && why+="; ${peak%; }"
    if [ "$rc" -ne 0 ]; then
        why+="; rc $rc: $(last_line "$dir.log" | cut -d' ' -f2-)"
        [ "$n" -ge 3 ] || ms=-
    fi
    vit_row ours "$attn" "$prec" "$VIT_B" "$n" "$ms" "$mem" "$why"
    note "ours: ViT $attn $prec aug=$aug: median $ms ms/step over $n steps, peak $mem MiB (rc $rc)"
}
if ! wants vit; then
    section_skip vit "not in ONLY"
elif [ "$BUILD_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip vit "no build or no data"
else
    section_begin vit
    for attn in std x; do ours_vit "$VIT_MAIN" "$attn" 0; done
    section_end "done"
fi

# ======================================================================================
if ! wants torch-vit; then
    section_skip torch-vit "not in ONLY"
elif [ "$TORCH_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip torch-vit "${TORCH_WHY:-no data}"
    record vit torch - - - 0 - - - - - - "skipped: ${TORCH_WHY:-no data}"
else
    section_begin torch-vit
    log=$work/runs/vit_torch.log
    note "PyTorch: ViT-small $VIT_DESC std,x $TORCH_VIT_PRECISION compile=$TORCH_VIT_COMPILE"
    mem_start "$work/runs/vit_torch.mem"
    run_capped "$TORCH_VIT_TIMEOUT" "$log" env PYTHONUNBUFFERED=1 "$PY" bench/torch_gpu.py vit \
        --data-dir "$work/data/cifar" --batch "$VIT_B" "${VIT_TORCH_DIMS[@]}" --attn std,x \
        --precision "$TORCH_VIT_PRECISION" --warmup "$VIT_WARMUP" --steps "$VIT_STEPS" \
        --compile "$TORCH_VIT_COMPILE" --device "$TDEVICE"
    rc=$RC
    mem=$(mem_stop)
    grep -E '^(RESULT|OOM)' "$log"
    for prec in ${TORCH_VIT_PRECISION//,/ }; do
        for attn in std x; do
            r=$(grep "^RESULT kind=vit attn=$attn batch=[0-9]* precision=$prec " "$log" | tail -n 1)
            if [ -n "$r" ]; then
                vit_row torch "$attn" "$prec" "$VIT_B" "$(field steps "$r")" "$(field ms_median "$r")" "$mem" \
                    "$(field steps "$r") of $VIT_EPOCH_STEPS steps timed, epoch extrapolated; $( [ "$(field compiled "$r")" = 1 ] && echo compiled || echo eager), $(field sdpa "$r") attention, $(field optim "$r"), dropout 0.1, no augmentation; torch alloc peak $(field peak_alloc_mib "$r") MiB (nvidia-smi: the max over all its runs)"
            else
                why="failed (rc $rc): $(last_line "$log")"
                grep -q "^OOM kind=vit attn=$attn batch=[0-9]* precision=$prec" "$log" && why="out of memory"
                [ "$rc" -eq 124 ] && why="timed out (cap ${TORCH_VIT_TIMEOUT}s)"
                [ "$rc" -eq 125 ] && why="not run (budget)"
                vit_row torch "$attn" "$prec" "$VIT_B" 0 - - "$why"
            fi
        done
    done
    section_end "done"
fi

# ======================================================================================
if ! wants extra; then
    section_skip extra "not in ONLY"
elif [ "$BUILD_OK" != 1 ] || [ "$DATA_OK" != 1 ]; then
    section_skip extra "no build or no data"
else
    section_begin extra
    if wants gpt; then
        for prec in $GPT_EXTRA; do
            if budget_for 40 > /dev/null; then ours_gpt "$prec" std; else note "ours GPT $prec: skipped (budget)"; fi
        done
    fi
    if wants vit; then
        if budget_for 30 > /dev/null; then ours_vit "$VIT_MAIN" std 1; else note "ours ViT with augmentation: skipped (budget)"; fi
    fi
    section_end "done"
fi

write_summary
echo
cat "$OUT/summary.md"
echo
note "done in $(elapsed)s; $OUT: summary.md console.log results.tsv logs.tar.gz"
