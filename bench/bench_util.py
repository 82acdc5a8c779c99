#!/usr/bin/python3
"""Helpers of bench/cpu.sh: synthetic data in the formats the trainers read,
llm.c's checkpoint and data shards, model FLOP counts, and the result table.

    bench_util.py tokens DIR VOCAB N          DIR/tok_train.bin, DIR/tok_val.bin (nanoGPT uint16)
                                              and the same tokens as llm.c shards in
                                              DIR/llmc_data/{train,val}.bin
    bench_util.py cifar DIR TRAIN TEST        random CIFAR-10 binary batches in DIR
    bench_util.py llmc-checkpoint FILE L C NH T V
                                              random GPT-2 weights in llm.c's format
    bench_util.py flops gpt B T L C VP        model FLOPs of one training step
    bench_util.py flops vit B C H W P D L M K SPT
    bench_util.py table RESULTS SGEMM_GFLOPS  the table of bench/cpu.sh (see table())

Model FLOPs count the matrix products only (LayerNorm, GELU, softmax and the
optimizer are left out), forward + backward = 3 x forward, and attention's
two T x T products in full (also where causal masking zeroes half of them).
Only numpy (which Debian's python3-torch brings) is needed.
"""
import os
import sys

import numpy as np

# llm.c's headers: 256 int32 each (llmc/dataloader.h, train_gpt2.c)
LLMC_SHARD_MAGIC, LLMC_SHARD_VERSION = 20240520, 1
LLMC_MODEL_MAGIC, LLMC_MODEL_VERSION = 20240326, 3


def write_tokens(d, vocab, n):
    """Uniform random token ids < vocab: n for training, n / 16 for validation."""
    rng = np.random.default_rng(1)
    os.makedirs(os.path.join(d, "llmc_data"), exist_ok=True)
    for split, count in (("train", n), ("val", max(n // 16, 4096))):
        tok = rng.integers(0, vocab, size=count, dtype=np.uint16)
        tok.tofile(os.path.join(d, f"tok_{split}.bin"))
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (LLMC_SHARD_MAGIC, LLMC_SHARD_VERSION, count)
        with open(os.path.join(d, "llmc_data", f"{split}.bin"), "wb") as f:
            f.write(header.tobytes() + tok.tobytes())


def write_cifar(d, train, test):
    """CIFAR-10's binary version: records of 1 label byte + 3072 pixel bytes;
    `train` records spread over data_batch_1..5.bin, `test` in test_batch.bin."""
    rng = np.random.default_rng(2)
    os.makedirs(d, exist_ok=True)

    def records(n):
        rec = rng.integers(0, 256, size=(n, 1 + 3072), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, size=n)
        return rec.tobytes()

    per_file = [train // 5 + (i < train % 5) for i in range(5)]
    for i, n in enumerate(per_file):
        with open(os.path.join(d, f"data_batch_{i + 1}.bin"), "wb") as f:
            f.write(records(n))
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(records(test))


def write_llmc_checkpoint(path, L, C, NH, T, V):
    """A GPT-2 checkpoint as llm.c's gpt2_build_from_checkpoint reads it:
    header (magic, version, maxT, V, L, NH, C, Vp), then the float32 tensors in
    its order (fill_in_parameter_sizes). Weights N(0, 0.02), LayerNorm gains 1,
    biases 0."""
    Vp = (V + 63) // 64 * 64
    rng = np.random.default_rng(3)
    tensors = [("wte", Vp * C), ("wpe", T * C), ("ln1w", L * C), ("ln1b", L * C),
               ("qkvw", L * 3 * C * C), ("qkvb", L * 3 * C), ("attprojw", L * C * C),
               ("attprojb", L * C), ("ln2w", L * C), ("ln2b", L * C), ("fcw", L * 4 * C * C),
               ("fcb", L * 4 * C), ("fcprojw", L * C * 4 * C), ("fcprojb", L * C),
               ("lnfw", C), ("lnfb", C)]
    header = np.zeros(256, dtype=np.int32)
    header[:8] = (LLMC_MODEL_MAGIC, LLMC_MODEL_VERSION, T, V, L, NH, C, Vp)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for name, n in tensors:
            if name.startswith("ln") and name.endswith("w"):
                t = np.ones(n, dtype=np.float32)
            elif name.endswith("b"):
                t = np.zeros(n, dtype=np.float32)
            else:
                t = (rng.standard_normal(n) * 0.02).astype(np.float32)
            f.write(t.tobytes())


def gpt_flops(B, T, L, C, Vp):
    """Matmul FLOPs of one forward + backward of the GPT (src/gpt.c)."""
    weights = L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + C * Vp   # incl. the tied head
    forward = 2 * B * T * weights + L * B * 2 * (2 * T * T * C)         # + QK^T and PV
    return 3 * forward


def vit_flops(B, C, H, W, P, D, L, M, K, spt):
    """Matmul FLOPs of one forward + backward of the ViT (src/vit.c)."""
    N = (H // P) * (W // P)
    T = N + 1
    PD = P * P * C * (5 if spt else 1)
    forward = 2 * N * PD * D                                         # patch embedding
    forward += L * (2 * T * (3 * D * D + D * D + 2 * D * M) + 2 * (2 * T * T * D))
    forward += 2 * D * K                                             # head
    return 3 * B * forward


def table(results, sgemm):
    """results: tab-separated rows
         row   NAME UNIT ITEMS_PER_STEP FLOPS_PER_STEP OURS_MS TORCH_MS
         llmc  NAME UNIT ITEMS_PER_STEP FLOPS_PER_STEP LLMC_MS OURS_MS TORCH_MS
    (ms per step; '-' where not measured). Prints the table: rates, the
    ratio, and the achieved GFLOP/s as a fraction of the SGEMM rate; then the
    llm.c lines."""
    rows, llmc = [], []
    with open(results) as f:
        for line in f:
            if line.strip():
                kind, *fields = line.rstrip("\n").split("\t")
                (rows if kind == "row" else llmc).append(fields)

    def rate(items, ms):
        return float(items) / (float(ms) / 1e3) if ms != "-" else None

    def fmt_rate(r, unit):
        if r is None:
            return "-"
        return f"{r:,.0f} {unit}" if r >= 100 else f"{r:.2f} {unit}"

    def fmt_gflops(flops, ms):
        if ms == "-":
            return "-"
        g = float(flops) / (float(ms) / 1e3) / 1e9
        return f"{g:.1f} ({100 * g / sgemm:.0f}%)"

    def ratio(a, b):
        return f"{a / b:.2f}" if a and b else "-"

    head = ("config", "ours", "PyTorch", "ours/PyTorch", "ours GFLOP/s", "PyTorch GFLOP/s")
    out = []
    for name, unit, items, flops, ours_ms, ref_ms in rows:
        out.append((name, fmt_rate(rate(items, ours_ms), unit), fmt_rate(rate(items, ref_ms), unit),
                    ratio(rate(items, ours_ms), rate(items, ref_ms)), fmt_gflops(flops, ours_ms),
                    fmt_gflops(flops, ref_ms)))
    widths = [max(len(r[i]) for r in out + [head]) for i in range(len(head))]

    def join(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    if out:
        print(join(head))
        print("  ".join("-" * w for w in widths))
        for r in out:
            print(join(r))
    for name, unit, items, flops, llmc_ms, ours_ms, ref_ms in llmc:
        r = rate(items, llmc_ms)
        print(f"{name}: {fmt_rate(r, unit)}, {fmt_gflops(flops, llmc_ms)} GFLOP/s (% of SGEMM); "
              f"ours/llm.c {ratio(rate(items, ours_ms), r)}, llm.c/PyTorch {ratio(r, rate(items, ref_ms))}")
    print(f"GFLOP/s: model matmul FLOPs per step / time per step; %: of the SGEMM rate "
          f"{sgemm:.1f} GFLOP/s (2048^3, same threads)")


def main():
    a = sys.argv[1:]
    if a[:1] == ["tokens"] and len(a) == 4:
        write_tokens(a[1], int(a[2]), int(a[3]))
    elif a[:1] == ["cifar"] and len(a) == 4:
        write_cifar(a[1], int(a[2]), int(a[3]))
    elif a[:1] == ["llmc-checkpoint"] and len(a) == 7:
        write_llmc_checkpoint(a[1], *map(int, a[2:]))
    elif a[:2] == ["flops", "gpt"] and len(a) == 7:
        print(gpt_flops(*map(int, a[2:])))
    elif a[:2] == ["flops", "vit"] and len(a) == 12:
        print(vit_flops(*map(int, a[2:])))
    elif a[:1] == ["table"] and len(a) == 3:
        table(a[1], float(a[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
