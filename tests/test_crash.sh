#!/usr/bin/env bash
# test_crash.sh - crash safety of train_gpt:
#  - SIGKILL at random moments while it checkpoints every step (20 trials):
#    the newest complete checkpoint always loads and the run resumes;
#  - SIGINT and SIGTERM: a checkpoint is written and the process exits with
#    128 + the signal, and resuming continues the run;
#  - a full disk (a file-size limit below the checkpoint's size): a clear
#    one-line error, exit 1, and the previous checkpoint stays intact;
#  - a NaN in training: --on-nan=stop names the step, the tensor and the last
#    good checkpoint (exit 3); --on-nan=skip skips the update and counts it.
# TRAIN_DEVICE=cuda runs it all on the CUDA backend (tests/test_gpu_runs.sh).
set -u
cd "$(dirname "$0")/.."
BIN=${TRAIN_GPT:-./train_gpt}
OUT=tests/out/crash${TRAIN_DEVICE:+_$TRAIN_DEVICE}
rm -rf "$OUT"; mkdir -p "$OUT"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL test_crash: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
TINY=(--layers=1 --heads=2 --embd=32 --seq=16 --batch=8 --mqar-keys=8 --mqar-pairs=3
      --eval-every=1000 --eval-batches=1 --log-every=1000 --device=${TRAIN_DEVICE:-cpu})

# --- SIGKILL at random moments -------------------------------------------------
# (setsid: a background job of a non-interactive shell ignores SIGINT; the
# trainer installs its own handlers, but this keeps signals out of our group)
RANDOM=7
for trial in $(seq 1 20); do
    dir=$OUT/kill$trial
    "$BIN" "${TINY[@]}" --steps=100000 --save-every=1 --out="$dir" > /dev/null 2>&1 &
    pid=$!
    # wait for the first checkpoint, then kill at a random moment
    for _ in $(seq 1 1000); do [ -e "$dir/checkpoint.bin" ] && break; sleep 0.02; done
    sleep "0.$(printf '%03d' $((RANDOM % 400)))"
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    if [ ! -e "$dir/checkpoint.bin" ]; then bad "kill trial $trial: no checkpoint"; continue; fi
    step=$(tail -n 1 "$dir/metrics.csv" | cut -d, -f1)
    "$BIN" --resume="$dir" --steps=$((step + 3)) > "$dir.resume.log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "resumed from" "$dir.resume.log"; then ok
    else bad "kill trial $trial: resume failed (exit $rc): $(tail -n 1 "$dir.resume.log")"; fi
done

# --- SIGINT / SIGTERM ----------------------------------------------------------
for sig in INT TERM; do
    dir=$OUT/sig$sig
    "$BIN" "${TINY[@]}" --steps=100000 --out="$dir" > "$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 1000); do [ -s "$dir/metrics.csv" ] && [ "$(wc -l < "$dir/metrics.csv")" -gt 3 ] && break; sleep 0.02; done
    kill -$sig "$pid"; wait "$pid"; rc=$?
    [ "$sig" = INT ] && want=130 || want=143
    check "SIG$sig: exit code $rc, expected $want" [ "$rc" -eq "$want" ]
    check "SIG$sig: checkpoint written" [ -s "$dir/checkpoint.bin" ]
    step=$(tail -n 1 "$dir/metrics.csv" | cut -d, -f1)
    "$BIN" --resume="$dir" --steps=$((step + 2)) > /dev/null 2>&1
    check "SIG$sig: resume continues" [ "$(tail -n 1 "$dir/metrics.csv" | cut -d, -f1)" = "$((step + 2))" ]
done

# --- a full disk ------------------------------------------------------------------
dir=$OUT/full
"$BIN" "${TINY[@]}" --steps=2 --save-every=2 --out="$dir" > /dev/null 2>&1
cp "$dir/checkpoint.bin" "$OUT/full.good"
size_kb=$(( $(stat -c %s "$dir/checkpoint.bin") / 1024 ))
err=$( (ulimit -f $((size_kb / 2)); "$BIN" --resume="$dir" --steps=4 --save-every=2) 2>&1 >/dev/null); rc=$?
check "full disk: exit code $rc, expected 1" [ "$rc" -eq 1 ]
case "$err" in *"cannot write checkpoint"*"previous checkpoint is kept"*) ok ;; *) bad "full disk message: $err" ;; esac
check "full disk: one-line error" [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
check "full disk: previous checkpoint intact" cmp -s "$dir/checkpoint.bin" "$OUT/full.good"
check "full disk: no temporary file left" [ ! -e "$dir/checkpoint.bin.tmp" ]
"$BIN" --resume="$dir" --steps=4 > /dev/null 2>&1
check "full disk: the kept checkpoint resumes" [ $? -eq 0 ]

# --- NaN policy --------------------------------------------------------------------
# a checkpoint whose parameters hold NaN (checksum fixed up), resumed
dir=$OUT/nan
"$BIN" "${TINY[@]}" --steps=2 --save-every=2 --out="$dir" > /dev/null 2>&1
python3 - "$dir/checkpoint.bin" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
n = struct.unpack_from("<Q", data, 96)[0]          # num_params (src/ckpt.h layout)
data[112:112 + 4 * 64] = struct.pack("<f", float("nan")) * 64   # the first wte row
body = bytes(data[:-4])
open(path, "wb").write(body + struct.pack("<I", zlib.crc32(body)))
PY
cp -r "$dir" "$OUT/nan_skip"
err=$("$BIN" --resume="$dir" --steps=6 --save-every=1 2>&1 >/dev/null); rc=$?
check "nan stop: exit code $rc, expected 3" [ "$rc" -eq 3 ]
case "$err" in *"non-finite"*"at step 3"*"first in parameter wte"*"last good checkpoint"*"(step 2)"*) ok ;;
    *) bad "nan stop message: $err" ;; esac
check "nan stop: one-line error" [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
out=$("$BIN" --resume="$OUT/nan_skip" --steps=6 --on-nan=skip 2>&1); rc=$?
check "nan skip: runs to the end (exit $rc)" [ "$rc" -eq 0 ]
case "$out" in *"update skipped (4 so far)"*"4 updates skipped for non-finite values"*) ok ;;
    *) bad "nan skip: not counted in the log: $out" ;; esac
check "nan skip: nan in metrics.csv" grep -q '^6,[0-9]*,[^,]*,nan,' "$OUT/nan_skip/metrics.csv"

echo "test_crash: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
