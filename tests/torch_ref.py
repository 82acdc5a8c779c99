#!/usr/bin/python3
"""PyTorch autograd reference for the GPT model (tests/test_model.c).

Reads an inputs file written by `build/test_model --write-inputs DIR`: the
model's shape, its float32 parameters in the project's flat layout
(src/gpt.h), and a batch of inputs and targets. Builds the same model with
torch in float64 and writes the reference file the C test compares against:
the logits over the real vocabulary, the mean loss, and the gradient of every
parameter in the same flat layout (the learned gammas, attn_gamma, included).

The attention of each layer (../shared/spec/variants.md): std, x (AttentionX,
O = Y - gamma V) or xsa (O = y - gamma ((y.v) / (v.v + 1e-6)) v, per head and
token), with gamma fixed or learned per layer or per head.

    /usr/bin/python3 tests/torch_ref.py IN_FILE REF_FILE

Needs only Debian's python3-torch.
"""
import math
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC_IN, MAGIC_REF = 0x47505449, 0x47505452  # "GPTI", "GPTR"
KINDS = ("std", "x", "xsa")            # AttnKind (ops.h)
LEARN = ("none", "layer", "head")      # GammaLearn (src/attn_config.h)


def read_inputs(path):
    with open(path, "rb") as f:
        data = f.read()
    head = struct.unpack_from("<11i", data, 0)
    magic, V, Vp, T, L, NH, C, bias, learn, B, n_params = head
    if magic != MAGIC_IN:
        sys.exit(f"error: {path} is not a test_model inputs file")
    (gamma,) = struct.unpack_from("<d", data, 44)
    kinds = [KINDS[k] for k in struct.unpack_from(f"<{L}i", data, 52)]
    off = 52 + 4 * L
    params = torch.frombuffer(bytearray(data[off:off + 4 * n_params]), dtype=torch.float32)
    off += 4 * n_params
    ints = torch.frombuffer(bytearray(data[off:off + 8 * B * T]), dtype=torch.int32)
    if off + 8 * B * T != len(data):
        sys.exit(f"error: {path} has {len(data)} bytes, expected {off + 8 * B * T}")
    cfg = dict(V=V, Vp=Vp, T=T, L=L, NH=NH, C=C, bias=bias, kinds=kinds, gamma=gamma,
               learn=LEARN[learn], B=B)
    inputs = ints[:B * T].long().view(B, T)
    targets = ints[B * T:].long().view(B, T)
    return cfg, params.double(), inputs, targets


def parse_kinds(text, L):
    """__metadata__'s attn: one kind for every layer, or a comma list of L kinds"""
    kinds = text.split(",")
    if len(kinds) == 1:
        kinds = kinds * L
    if len(kinds) != L or any(k not in KINDS for k in kinds):
        raise ValueError(f"attn '{text}' for {L} layers")
    return kinds


def learn_of(meta):
    """__metadata__'s gamma_learn (absent in files from before learned gammas: fixed)"""
    learn = meta.get("gamma_learn", "none")
    if learn not in LEARN:
        raise ValueError(f"gamma_learn={learn!r}: expected none, layer or head")
    return learn


def attn_kinds(c):
    """the kind of each layer"""
    return c["kinds"]


def gammas_per_layer(c):
    """learned gamma values per variant layer: 1 (layer), NH (head), 0 (fixed)"""
    return {"none": 0, "layer": 1, "head": c["NH"]}[c.get("learn", "none")]


def attn_gamma_shape(c):
    """attn_gamma's shape (variant layers, gammas per layer), or None when gamma is fixed"""
    nvar, G = sum(k != "std" for k in attn_kinds(c)), gammas_per_layer(c)
    return (nvar, G) if nvar and G else None


def layer_gamma(p, c, l):
    """layer l's coefficient: the fixed float, or its learned values, shape (1) or (NH)"""
    kinds = attn_kinds(c)
    if kinds[l] == "std" or p.get("attn_gamma") is None:
        return c["gamma"]
    return p["attn_gamma"][sum(k != "std" for k in kinds[:l])]


def variant(y, v, kind, gamma):
    """O = f(Y, V; gamma) of one layer, y and v (B, NH, T, hs); gamma a float or (1) / (NH)"""
    if kind == "std":
        return y
    if torch.is_tensor(gamma):
        gamma = gamma.view(1, -1, 1, 1)                   # head h's coefficient, or the layer's one
    if kind == "x":
        return y - gamma * v                               # AttentionX: O = PV - gamma V
    if kind == "xsa":                                      # less the part along the token's own v
        n2 = (v * v).sum(-1, keepdim=True) + 1e-6
        return y - gamma * ((y * v).sum(-1, keepdim=True) / n2) * v
    raise ValueError(f"attention kind {kind}")


def split_params(flat, c):
    """Views into the flat parameter vector, in src/gpt.h's order."""
    V, Vp, T, L, C, b = c["V"], c["Vp"], c["T"], c["L"], c["C"], c["bias"]
    g = attn_gamma_shape(c)
    shapes = [("wte", (Vp, C), 1), ("wpe", (T, C), 1), ("ln1w", (L, C), 1), ("ln1b", (L, C), b),
              ("qkvw", (L, 3 * C, C), 1), ("qkvb", (L, 3 * C), b), ("attprojw", (L, C, C), 1),
              ("attprojb", (L, C), b), ("ln2w", (L, C), 1), ("ln2b", (L, C), b),
              ("fcw", (L, 4 * C, C), 1), ("fcb", (L, 4 * C), b), ("fcprojw", (L, C, 4 * C), 1),
              ("fcprojb", (L, C), b), ("lnfw", (C,), 1), ("lnfb", (C,), b), ("attn_gamma", g, g is not None)]
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


def forward(p, c, idx, trace=None):
    """The logits; with a list `trace`, appends each layer's (y, v, o), (B, NH, T, hs) each."""
    B, T = idx.shape
    C, NH, L = c["C"], c["NH"], c["L"]
    hs = C // NH
    x = p["wte"][idx] + p["wpe"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(L):
        def opt(name):
            return p[name][l] if p[name] is not None else None
        h = F.layer_norm(x, (C,), p["ln1w"][l], opt("ln1b"), 1e-5)
        qkv = F.linear(h, p["qkvw"][l], opt("qkvb"))
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        s = s.masked_fill(~mask, float("-inf"))
        y = F.softmax(s, dim=-1) @ v
        o = variant(y, v, attn_kinds(c)[l], layer_gamma(p, c, l))
        if trace is not None:
            trace.append((y, v, o))
        o = o.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(o, p["attprojw"][l], opt("attprojb"))
        h = F.layer_norm(x, (C,), p["ln2w"][l], opt("ln2b"), 1e-5)
        h = F.gelu(F.linear(h, p["fcw"][l], opt("fcb")))   # exact (erf) GELU
        x = x + F.linear(h, p["fcprojw"][l], opt("fcprojb"))
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], 1e-5)
    return x @ p["wte"].T                                   # tied head, Vp columns


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torch_ref.py IN_FILE REF_FILE")
    c, flat, inputs, targets = read_inputs(sys.argv[1])
    flat.requires_grad_(True)
    p = split_params(flat, c)
    logits = forward(p, c, inputs)[..., :c["V"]]             # padded columns are never predicted
    loss = F.cross_entropy(logits.reshape(-1, c["V"]), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    out = bytearray(struct.pack("<iii", MAGIC_REF, logits.numel(), flat.numel()))
    out += logits.detach().contiguous().numpy().astype("<f8").tobytes()
    out += struct.pack("<d", loss.item())
    out += flat.grad.numpy().astype("<f8").tobytes()
    with open(sys.argv[2], "wb") as f:
        f.write(out)
    print(f"torch_ref: {sys.argv[2]}: loss {loss.item():.10f}")


if __name__ == "__main__":
    main()
