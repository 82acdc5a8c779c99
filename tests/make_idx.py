#!/usr/bin/env python3
"""make_idx.py DIR - a tiny synthetic dataset in MNIST's IDX format for the
trainer tests (test_vit_cli.sh, test_mpi.sh): 12x12 images, 10 classes, class
k a bright 3x3 block at a class-dependent place plus noise; 100 train images
and 40 test images, the same bytes every time (seeded)."""
import os, random, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
r = random.Random(5)
def write(split, n):
    pixels, labels = bytearray(), bytearray()
    for _ in range(n):
        k = r.randrange(10)
        img = [r.randrange(40) for _ in range(144)]
        y0, x0 = 1 + 3 * (k // 4), 1 + 3 * (k % 4)
        for y in range(y0, y0 + 3):
            for x in range(x0, x0 + 3):
                img[y * 12 + x] = 200 + r.randrange(56)
        pixels += bytes(img)
        labels.append(k)
    with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 12, 12) + pixels)
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
write("train", 100)
write("t10k", 40)
