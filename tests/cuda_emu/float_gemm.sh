#!/usr/bin/env bash
# float_gemm.sh - the emulator's own tests and test_gpu with CUDA_EMU_GEMM=float:
# every cuBLAS GEMM accumulates in fp32 in a shuffled order, different per
# output element (emu.cpp), so the tolerances of test_gpu are tried against
# fp32 rounding and against no fixed summation order, as on a GPU. TF32 stays
# off (TRAIN_TF32=0). EMU names the emulator's build directory.
cd "$(dirname "$0")/../.."
export CUDA_EMU_GEMM=float TRAIN_TF32=0
"${EMU:-build/emu}/test_emu" || exit 1
exec "${EMU:-build/emu}/test_gpu"
