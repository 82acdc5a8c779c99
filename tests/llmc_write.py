#!/usr/bin/python3
"""Writes a GPT-2 checkpoint in llm.c's format with random weights
(tests/test_cli.sh; the format in ../shared/spec/formats.md): 256 int32 -
20240326, version (3: fp32, 5: bf16), max_seq, vocab, layers, heads, embd,
padded vocab - then every tensor in llm.c's order, row-major, weights (out, in).
The struct module only; bf16 rounds to nearest even, as llm.c's writer does.

    /usr/bin/python3 tests/llmc_write.py OUT VERSION T V L NH C VP SEED
"""
import random
import struct
import sys


def main():
    out, version = sys.argv[1], int(sys.argv[2])
    T, V, L, NH, C, Vp, seed = (int(a) for a in sys.argv[3:10])
    r = random.Random(seed)
    sizes = [Vp * C, T * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
             L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]
    gains = {2, 8, 14}   # ln1w, ln2w, lnfw: near 1, as trained LayerNorms are
    header = [20240326, version, T, V, L, NH, C, Vp] + [0] * 248
    with open(out, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for k, n in enumerate(sizes):
            vals = [(1.0 if k in gains else 0.0) + r.gauss(0, 0.2) for _ in range(n)]
            if version == 3:
                f.write(struct.pack(f"<{n}f", *vals))
            else:
                bits = struct.unpack(f"<{n}I", struct.pack(f"<{n}f", *vals))
                f.write(struct.pack(f"<{n}H", *[(u + 0x7FFF + ((u >> 16) & 1)) >> 16 for u in bits]))


if __name__ == "__main__":
    main()
