#!/usr/bin/env bash
# check_kernels.sh - what ptxas says each CUDA kernel needs, checked against
# what any launch may ask of it. Needs nvcc, not a GPU. A kernel that needs
# more registers than a block's share of the register file fails only on the
# GPU, at launch ("too many resources requested for launch"): neither the CPU
# reference nor the emulator can see it. For every kernel and every sm_
# architecture the Makefile builds:
#   - registers x 1024 threads (the largest block CUDA allows) fit the 65536
#     registers of a block, so every launch configuration can run it; a kernel
#     declared with __launch_bounds__(N) may only be launched with N threads
#     or fewer, so N of them must fit (and ptxas's 255 per thread);
#   - no spill to local memory (correct, but silently slow);
#   - at most 48 KiB of static shared memory (more needs an opt-in attribute).
# NVCC and NVCC_ARCH come from the Makefile (make check-kernels).
set -u
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)}
if [ -z "$NVCC" ]; then
    echo "check_kernels: skipped: nvcc not found"
    exit 0
fi
ARCH=${NVCC_ARCH:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
demangle() { if command -v c++filt >/dev/null; then c++filt; else cat; fi; }

passed=0 failed=0
for cu in *.cu; do
    # shellcheck disable=SC2086  # ARCH is a list of flags
    if ! "$NVCC" -O3 -std=c++17 $ARCH -DHAVE_CUDA -I. -Xptxas -v -c "$cu" -o "$tmp/k.o" \
            > "$tmp/ptxas.log" 2>&1; then
        echo "FAIL check_kernels: $cu does not compile:"; tail -n 5 "$tmp/ptxas.log"
        failed=$((failed + 1)); continue
    fi
    # kernels with __launch_bounds__: "name max_threads", from the PTX's .maxntid
    : > "$tmp/bounds"
    if grep -q "__launch_bounds__" "$cu"; then
        "$NVCC" -O3 -std=c++17 -arch=compute_90 -DHAVE_CUDA -I. -ptx "$cu" -o "$tmp/k.ptx" &&
            awk '/\.entry/ { name = $NF; sub(/\(.*/, "", name) }
                 /\.maxntid/ { gsub(/,/, " "); print name, $2 * $3 * $4 }' "$tmp/k.ptx" > "$tmp/bounds"
    fi
    # one line per kernel and architecture: "name arch registers spill_bytes smem_bytes"
    awk '/Compiling entry function/ {
             split($0, q, "'\''"); name = q[2]; arch = q[4]; spill = 0 }
         /Function properties for/ { props = $NF }
         /bytes spill stores/ && props == name {
             for (i = 1; i < NF; i++) if ($(i + 1) == "bytes" && $(i + 2) == "spill") spill += $i }
         /Used [0-9]+ registers/ && name != "" {
             regs = 0; smem = 0
             for (i = 1; i < NF; i++) {
                 if ($(i + 1) ~ /^registers/) regs = $i
                 if ($(i + 2) ~ /^smem/) smem = $i }
             print name, arch, regs, spill, smem; name = "" }' "$tmp/ptxas.log" > "$tmp/kernels"
    if [ ! -s "$tmp/kernels" ]; then
        echo "FAIL check_kernels: no ptxas report for $cu"; failed=$((failed + 1)); continue
    fi
    while read -r name arch regs spill smem; do
        pretty=$(printf '%s' "$name" | demangle | sed 's/(.*//')
        threads=$(awk -v n="$name" '$1 == n { print $2 }' "$tmp/bounds")
        limit=$((65536 / ${threads:-1024}))
        [ "$limit" -gt 255 ] && limit=255
        if [ "$regs" -le "$limit" ] && [ "$spill" -eq 0 ] && [ "$smem" -le 49152 ]; then
            passed=$((passed + 1))
        else
            echo "FAIL check_kernels: $cu: $pretty for $arch: $regs registers (at most $limit)," \
                 "$spill bytes of spill stores and loads (none), $smem bytes of shared memory (at most 49152)"
            failed=$((failed + 1))
        fi
    done < "$tmp/kernels"
    awk -v cu="$cu" '{ n++; if ($3 > r) { r = $3 } if ($5 > s) s = $5 }
        END { printf "%s: %d kernel builds, at most %d registers and %d bytes of shared memory\n",
              cu, n, r, s }' "$tmp/kernels"
done
echo "check_kernels: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
