#!/usr/bin/env bash
# racecheck.sh - test_gpu on the CUDA emulator with CUDA_EMU_RACECHECK=1: every
# kernel launch runs twice from the same buffers, blocks and threads ascending
# then descending, and a result that differs is reported as a race.
# EMU names the emulator's build directory (make test-gpu-emu sets it).
cd "$(dirname "$0")/../.."
CUDA_EMU_RACECHECK=1 exec "${EMU:-build/emu}/test_gpu"
