#!/usr/bin/python3
"""PyTorch autograd reference for the ViT models (tests/test_vit_model.c).

Reads an inputs file written by `build/test_vit_model --write-inputs DIR`: the
model's shape, its float32 parameters in the project's flat layout (src/vit.h),
a batch of normalised images and their labels. Builds the same model with
plain torch ops in float64, written after kentaroy47/vision-transformers-cifar10
(models/vit_small.py: SPT, LSA; models/vit.py: the plain ViT), with the
attention variants on top (std, x, xsa per layer, gamma fixed or learned per
layer or per head: tests/torch_ref.py's variant), and writes the reference
file the C test compares against: the logits, the mean cross-entropy loss, and
the gradient of every parameter in the same flat layout (the learned gammas,
attn_gamma, included). Dropout is 0 (the comparison is of the deterministic
model).

    /usr/bin/python3 tests/torch_ref_vit.py IN_FILE REF_FILE

Needs only Debian's python3-torch.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import KINDS, LEARN, attn_gamma_shape, attn_kinds, layer_gamma, variant  # noqa: E402

MAGIC_IN, MAGIC_REF = 0x56495449, 0x56495452  # "VITI", "VITR"
VIT_SMALL, VIT_PLAIN = 0, 1
HEADER = "<14i"


def read_inputs(path):
    with open(path, "rb") as f:
        data = f.read()
    head = struct.unpack_from(HEADER, data, 0)
    magic, kind, C, H, W, P, K, D, L, NH, M, learn, B, n_params = head
    if magic != MAGIC_IN:
        sys.exit(f"error: {path} is not a test_vit_model inputs file")
    off = struct.calcsize(HEADER)
    (gamma,) = struct.unpack_from("<d", data, off)
    off += 8
    kinds = [KINDS[k] for k in struct.unpack_from(f"<{L}i", data, off)]
    off += 4 * L
    params = torch.frombuffer(bytearray(data[off:off + 4 * n_params]), dtype=torch.float32)
    off += 4 * n_params
    n_pix = B * C * H * W
    images = torch.frombuffer(bytearray(data[off:off + 4 * n_pix]), dtype=torch.float32)
    off += 4 * n_pix
    labels = torch.frombuffer(bytearray(data[off:off + 4 * B]), dtype=torch.int32)
    if off + 4 * B != len(data):
        sys.exit(f"error: {path} has {len(data)} bytes, expected {off + 4 * B}")
    cfg = dict(kind=kind, C=C, H=H, W=W, P=P, K=K, D=D, L=L, NH=NH, M=M, kinds=kinds,
               gamma=gamma, learn=LEARN[learn], B=B)
    return cfg, params.double(), images.double().view(B, C, H, W), labels.long()


def split_params(flat, c):
    """Views into the flat parameter vector, in src/vit.h's order."""
    C, P, K, D, L, NH, M = c["C"], c["P"], c["K"], c["D"], c["L"], c["NH"], c["M"]
    spt = c["kind"] == VIT_SMALL
    proj = not (c["kind"] == VIT_PLAIN and NH == 1)   # models/vit.py: identity to_out
    PD = P * P * C * (5 if spt else 1)
    T = (c["H"] // P) * (c["W"] // P) + 1
    g = attn_gamma_shape(c)
    shapes = [("patch_lnw", (PD,), spt), ("patch_lnb", (PD,), spt), ("patch_w", (D, PD), 1),
              ("patch_b", (D,), 1), ("cls", (D,), 1), ("pos", (T, D), 1),
              ("ln1w", (L, D), 1), ("ln1b", (L, D), 1), ("qkvw", (L, 3 * D, D), 1),
              ("log_temp", (L,), spt), ("attprojw", (L, D, D), proj), ("attprojb", (L, D), proj),
              ("ln2w", (L, D), 1), ("ln2b", (L, D), 1), ("fcw", (L, M, D), 1), ("fcb", (L, M), 1),
              ("fcprojw", (L, D, M), 1), ("fcprojb", (L, D), 1), ("head_lnw", (D,), 1),
              ("head_lnb", (D,), 1), ("head_w", (K, D), 1), ("head_b", (K,), 1),
              ("attn_gamma", g, g is not None)]
    p, off = {}, 0
    for name, shape, present in shapes:
        if not present:
            p[name] = None
            continue
        n = math.prod(shape)
        p[name] = flat[off:off + n].view(shape)
        off += n
    if off != flat.numel():
        sys.exit(f"error: layout has {off} parameters, the file {flat.numel()}")
    return p


def patches(x, P):
    """'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'"""
    b, c, h, w = x.shape
    x = x.view(b, c, h // P, P, w // P, P).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // P) * (w // P), P * P * c)


def spt_input(x):
    """SPT: the image and its four one-pixel shifts (zero fill), concatenated on channels."""
    shifts = ((1, -1, 0, 0), (-1, 1, 0, 0), (0, 0, 1, -1), (0, 0, -1, 1))
    return torch.cat([x] + [F.pad(x, s) for s in shifts], dim=1)


def forward(p, c, img, trace=None):
    """The logits; with a list `trace`, appends each layer's (y, v, o), (B, NH, T, hs) each."""
    D, NH, L, P = c["D"], c["NH"], c["L"], c["P"]
    hs = D // NH
    spt = c["kind"] == VIT_SMALL
    if spt:
        t = patches(spt_input(img), P)
        t = F.layer_norm(t, (t.shape[-1],), p["patch_lnw"], p["patch_lnb"], 1e-5)
    else:
        t = patches(img, P)
    x = F.linear(t, p["patch_w"], p["patch_b"])
    B, N, _ = x.shape
    x = torch.cat((p["cls"].view(1, 1, D).expand(B, 1, D), x), dim=1) + p["pos"][:N + 1]
    eye = torch.eye(N + 1, dtype=torch.bool)
    for l in range(L):
        h = F.layer_norm(x, (D,), p["ln1w"][l], p["ln1b"][l], 1e-5)
        qkv = F.linear(h, p["qkvw"][l])                       # no bias
        q, k, v = (u.view(B, N + 1, NH, hs).transpose(1, 2) for u in qkv.split(D, dim=-1))
        dots = q @ k.transpose(-1, -2)
        if spt:                                                # LSA
            dots = dots * p["log_temp"][l].exp()
            dots = dots.masked_fill(eye, -torch.finfo(dots.dtype).max)
        else:
            dots = dots * hs ** -0.5
        y = F.softmax(dots, dim=-1) @ v
        o = variant(y, v, attn_kinds(c)[l], layer_gamma(p, c, l))
        if trace is not None:
            trace.append((y, v, o))
        o = o.transpose(1, 2).reshape(B, N + 1, D)
        if p["attprojw"] is not None:
            o = F.linear(o, p["attprojw"][l], p["attprojb"][l])
        x = x + o
        h = F.layer_norm(x, (D,), p["ln2w"][l], p["ln2b"][l], 1e-5)
        h = F.gelu(F.linear(h, p["fcw"][l], p["fcb"][l]))   # exact (erf) GELU
        x = x + F.linear(h, p["fcprojw"][l], p["fcprojb"][l])
    x = F.layer_norm(x[:, 0], (D,), p["head_lnw"], p["head_lnb"], 1e-5)
    return F.linear(x, p["head_w"], p["head_b"])


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torch_ref_vit.py IN_FILE REF_FILE")
    c, flat, images, labels = read_inputs(sys.argv[1])
    flat.requires_grad_(True)
    p = split_params(flat, c)
    logits = forward(p, c, images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = bytearray(struct.pack("<iii", MAGIC_REF, logits.numel(), flat.numel()))
    out += logits.detach().contiguous().numpy().astype("<f8").tobytes()
    out += struct.pack("<d", loss.item())
    out += flat.grad.numpy().astype("<f8").tobytes()
    with open(sys.argv[2], "wb") as f:
        f.write(out)
    print(f"torch_ref_vit: {sys.argv[2]}: loss {loss.item():.10f}")


if __name__ == "__main__":
    main()
