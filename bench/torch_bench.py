#!/usr/bin/python3
"""The PyTorch side of bench/cpu.sh: the same GPT and ViT models as our
trainers, trained in plain eager PyTorch (fp32, torch.optim.AdamW), timed per
optimizer step as our trainers time theirs.

The models are not written again here: the forward passes are those of
tests/torch_ref.py (GPT) and tests/torch_ref_vit.py (ViT, ViT-small), the
references our gradient tests check the C code against, imported and run in
float32 on leaf tensors in the projects' parameter layout (one tensor per
layout entry, stacked over layers as in src/gpt.h and src/vit.h).

    torch_bench.py blas
    torch_bench.py gpt --data FILE --vocab V --layers L --embd C --heads H --seq T --batch B
                       --attn std|x|xsa --gamma G --warmup W --steps N --threads K
    torch_bench.py vit --dataset fashion-mnist|cifar10 --data-dir DIR --model vit|vit_small
                       --patch P --dim D --depth L --heads H --mlp-dim M --batch B
                       --attn std|x|xsa --gamma G --warmup W --steps N --threads K

`blas` prints the BLAS library this torch has loaded (from /proc/self/maps).
The training commands time W + N steps - each step is batch, zero_grad,
forward, backward, (clip,) AdamW step - and print the N after the first W:

    RESULT ms_per_step=12.34 items_per_s=5678.9 steps=30 threads=2 loss=6.2345

Needs only Debian's python3-torch (and its numpy).
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch_ref  # noqa: E402  (the GPT reference of tests/test_model.c)
import torch_ref_vit  # noqa: E402  (the ViT reference of tests/test_vit_model.c)

# the 2-D tensors AdamW decays (src/params.h: matmul weights and embeddings)
GPT_DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}
VIT_DECAY = {"patch_w", "pos", "qkvw", "attprojw", "fcw", "fcprojw", "head_w"}


def blas_libraries():
    """The BLAS / LAPACK shared objects mapped into this process."""
    torch.ones(256, 256) @ torch.ones(256, 256)   # make sure the BLAS has been used
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if "blas" in name or "lapack" in name:
                paths.add(os.path.realpath(path))
    return sorted(paths)


def gpt_num_params(c):
    """Elements of src/gpt.h's layout (torch_ref.split_params checks it)."""
    Vp, T, L, C, b = c["Vp"], c["T"], c["L"], c["C"], c["bias"]
    per_layer = C + 3 * C * C + C * C + C + 4 * C * C + C * 4 * C      # ln1w qkvw attprojw ln2w fcw fcprojw
    per_layer += b * (C + 3 * C + C + C + 4 * C + C)                    # their biases
    return Vp * C + T * C + L * per_layer + C + b * C


def vit_num_params(c):
    """Elements of src/vit.h's layout (torch_ref_vit.split_params checks it)."""
    C, P, K, D, L, NH, M = c["C"], c["P"], c["K"], c["D"], c["L"], c["NH"], c["M"]
    spt = c["kind"] == torch_ref_vit.VIT_SMALL
    proj = not (c["kind"] == torch_ref_vit.VIT_PLAIN and NH == 1)
    PD = P * P * C * (5 if spt else 1)
    T = (c["H"] // P) * (c["W"] // P) + 1
    per_layer = 2 * D + 3 * D * D + spt + proj * (D * D + D) + 2 * D + M * D + M + D * M + D
    return 2 * PD * spt + D * PD + D + D + T * D + L * per_layer + 2 * D + K * D + K


def leaf_params(split, c, n_params, head_size):
    """Float32 leaf tensors in the layout of `split` (a split_params function),
    initialised as the trainers do in kind: weights N(0, 0.02), LayerNorm gains
    1, biases 0, LSA temperature log(head_size^-0.5). (The speed of a step does
    not depend on the values, as long as they are finite and not denormal.)"""
    views = split(torch.zeros(n_params), c)
    gen = torch.Generator().manual_seed(1)
    p = {}
    for name, v in views.items():
        if v is None:
            p[name] = None
            continue
        t = torch.empty(v.shape)
        if name == "log_temp":
            t.fill_(math.log(head_size ** -0.5))
        elif "ln" in name and name.endswith("w"):
            t.fill_(1.0)
        elif name.endswith("b"):
            t.zero_()
        else:
            t.normal_(0.0, 0.02, generator=gen)
        p[name] = t.requires_grad_(True)
    return p


def adamw(p, decay, lr, betas, wd):
    """torch.optim.AdamW with decay on the `decay` tensors only, as ours."""
    groups = [{"params": [t for n, t in p.items() if t is not None and n in decay], "weight_decay": wd},
              {"params": [t for n, t in p.items() if t is not None and n not in decay], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


def timed_training(step, warmup, steps, items_per_step):
    """Runs `step` (a function of the step index returning the loss) warmup +
    steps times and prints the RESULT line for the last `steps`."""
    times, loss = [], float("nan")
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        loss = step(s)
        dt = time.perf_counter() - t0
        if s >= warmup:
            times.append(dt)
    if not math.isfinite(loss):
        sys.exit(f"torch_bench: non-finite loss {loss}")
    total = sum(times)
    print(f"RESULT ms_per_step={1e3 * total / steps:.3f} items_per_s={items_per_step * steps / total:.1f} "
          f"steps={steps} threads={torch.get_num_threads()} loss={loss:.4f}")


def run_gpt(a):
    # the token file as our trainer reads it: nanoGPT's headerless uint16
    data = np.memmap(a.data, dtype=np.uint16, mode="r")
    Vp = (a.vocab + 63) // 64 * 64                        # src/gpt.c: padded to a multiple of 64
    c = dict(V=a.vocab, Vp=Vp, T=a.seq, L=a.layers, NH=a.heads, C=a.embd, bias=1,
             kinds=[a.attn] * a.layers, gamma=a.gamma, learn="none")
    p = leaf_params(torch_ref.split_params, c, gpt_num_params(c), a.embd // a.heads)
    params = [t for t in p.values() if t is not None]
    opt = adamw(p, GPT_DECAY, a.lr, (0.9, 0.95), 0.1)    # train_gpt's defaults
    rng = np.random.default_rng(1)

    def step(_):
        # nanoGPT's get_batch: B random windows of T + 1 tokens
        ix = rng.integers(0, len(data) - a.seq - 1, a.batch)
        win = torch.from_numpy(np.stack([data[i:i + a.seq + 1] for i in ix]).astype(np.int64))
        x, y = win[:, :-1], win[:, 1:]
        opt.zero_grad(set_to_none=True)
        logits = torch_ref.forward(p, c, x)[..., :a.vocab]   # padded columns are never predicted
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)          # train_gpt's --clip=1
        opt.step()
        return loss.item()

    timed_training(step, a.warmup, a.steps, a.batch * a.seq)


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_images(dataset, d):
    """The training split as a normalised float32 (N, C, H, W) tensor and labels."""
    if dataset == "cifar10":
        recs = np.concatenate([np.fromfile(os.path.join(d, f"data_batch_{i}.bin"), dtype=np.uint8)
                               for i in range(1, 6)]).reshape(-1, 1 + 3 * 32 * 32)
        labels, pix = recs[:, 0], recs[:, 1:].reshape(-1, 3, 32, 32)
        mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    else:
        def find(name):
            path = os.path.join(d, name)
            return path if os.path.exists(path) else path + ".gz"
        pix = read_idx(find("train-images-idx3-ubyte"))[:, None]
        labels = read_idx(find("train-labels-idx1-ubyte"))
        mean, std = np.array([0.2860]), np.array([0.3530])
    x = (pix.astype(np.float32) / 255 - mean[None, :, None, None].astype(np.float32)) / \
        std[None, :, None, None].astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(labels.astype(np.int64))


def run_vit(a):
    images, labels = load_images(a.dataset, a.data_dir)
    n, C, H, W = images.shape
    kind = torch_ref_vit.VIT_SMALL if a.model == "vit_small" else torch_ref_vit.VIT_PLAIN
    c = dict(kind=kind, C=C, H=H, W=W, P=a.patch, K=10, D=a.dim, L=a.depth, NH=a.heads, M=a.mlp_dim,
             kinds=[a.attn] * a.depth, gamma=a.gamma, learn="none")
    p = leaf_params(torch_ref_vit.split_params, c, vit_num_params(c), a.dim // a.heads)
    opt = adamw(p, VIT_DECAY, a.lr, (0.9, 0.999), a.wd)
    rng = np.random.default_rng(1)
    per_epoch = n // a.batch
    order = None

    def step(s):
        # a shuffled epoch order, batch after batch (as train_vit; no augmentation)
        nonlocal order
        if s % per_epoch == 0:
            order = torch.from_numpy(rng.permutation(n))
        idx = order[(s % per_epoch) * a.batch:(s % per_epoch + 1) * a.batch]
        x, y = images.index_select(0, idx), labels.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(torch_ref_vit.forward(p, c, x), y)
        loss.backward()
        opt.step()                                        # train_vit's --clip=0: no clipping
        return loss.item()

    timed_training(step, a.warmup, a.steps, a.batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("blas")
    for name in ("gpt", "vit"):
        s = sub.add_parser(name)
        s.add_argument("--attn", choices=("std", "x", "xsa"), default="std")
        s.add_argument("--gamma", type=float, default=1.0)
        s.add_argument("--heads", type=int, required=True)
        s.add_argument("--batch", type=int, required=True)
        s.add_argument("--lr", type=float, default=1e-3)
        s.add_argument("--warmup", type=int, default=3)
        s.add_argument("--steps", type=int, default=30)
        s.add_argument("--threads", type=int, default=2)
        if name == "gpt":
            s.add_argument("--data", required=True)
            s.add_argument("--vocab", type=int, required=True)
            s.add_argument("--layers", type=int, required=True)
            s.add_argument("--embd", type=int, required=True)
            s.add_argument("--seq", type=int, required=True)
        else:
            s.add_argument("--dataset", choices=("fashion-mnist", "mnist", "cifar10"), required=True)
            s.add_argument("--data-dir", required=True)
            s.add_argument("--model", choices=("vit", "vit_small"), required=True)
            s.add_argument("--patch", type=int, required=True)
            s.add_argument("--dim", type=int, required=True)
            s.add_argument("--depth", type=int, required=True)
            s.add_argument("--mlp-dim", type=int, required=True)
            s.add_argument("--wd", type=float, default=0.05)
    a = ap.parse_args()
    if a.cmd == "blas":
        for path in blas_libraries():
            print(f"BLAS {path}")
        return
    torch.set_num_threads(a.threads)
    if a.cmd == "gpt":
        run_gpt(a)
    else:
        run_vit(a)


if __name__ == "__main__":
    main()
