#!/usr/bin/python3
"""An independent reader of train_gpt's --export file (tests/test_cli.sh).

Parses the safetensors file with json + struct only (not the project's code),
checks its header (F32 tensors, nanoGPT's names and shapes, offsets that tile
the data exactly), builds the GPT in PyTorch from it (tests/torch_ref.py's
forward), evaluates the validation windows README documents for
--sample=sequential, and compares the loss with the one train_gpt wrote.

    /usr/bin/python3 tests/safetensors_check.py FILE VAL_BIN EVAL_WINDOWS VAL_LOSS

VAL_BIN is a nanoGPT uint16 token file; EVAL_WINDOWS = eval-batches x batch.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402


def fail(msg):
    sys.exit(f"safetensors_check: {msg}")


def main():
    path, val_path, windows, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    data = open(path, "rb").read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen % 8 or 8 + hlen > len(data):
        fail(f"header length {hlen} of a {len(data)}-byte file")
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__")
    body = data[8 + hlen:]
    L, C, NH = int(meta["n_layer"]), int(meta["n_embd"]), int(meta["n_head"])
    V, Vp, T, bias = int(meta["vocab_size"]), int(meta["padded_vocab_size"]), int(meta["block_size"]), int(meta["bias"])
    want_shapes = {"transformer.wte.weight": [Vp, C], "transformer.wpe.weight": [T, C],
                   "transformer.ln_f.weight": [C]}
    if bias:
        want_shapes["transformer.ln_f.bias"] = [C]
    layer = {"ln_1.weight": [C], "attn.c_attn.weight": [3 * C, C], "attn.c_proj.weight": [C, C],
             "ln_2.weight": [C], "mlp.c_fc.weight": [4 * C, C], "mlp.c_proj.weight": [C, 4 * C]}
    if bias:
        layer.update({"ln_1.bias": [C], "attn.c_attn.bias": [3 * C], "attn.c_proj.bias": [C],
                      "ln_2.bias": [C], "mlp.c_fc.bias": [4 * C], "mlp.c_proj.bias": [C]})
    for l in range(L):
        for k, v in layer.items():
            want_shapes[f"transformer.h.{l}.{k}"] = v
    if set(header) != set(want_shapes):
        fail(f"tensor names differ: extra {sorted(set(header) - set(want_shapes))}, "
             f"missing {sorted(set(want_shapes) - set(header))}")
    spans, tensors = [], {}
    for name, info in header.items():
        if info["dtype"] != "F32" or info["shape"] != want_shapes[name]:
            fail(f"{name}: {info['dtype']} {info['shape']}, expected F32 {want_shapes[name]}")
        b, e = info["data_offsets"]
        n = 1
        for d in info["shape"]:
            n *= d
        if e - b != 4 * n:
            fail(f"{name}: offsets {b}..{e} for {n} floats")
        spans.append((b, e))
        tensors[name] = torch.frombuffer(bytearray(body[b:e]), dtype=torch.float32).double().view(info["shape"])
    spans.sort()
    if spans[0][0] != 0 or spans[-1][1] != len(body) or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
        fail("data offsets do not tile the data section")

    def stack(k):
        return torch.stack([tensors[f"transformer.h.{l}.{k}"] for l in range(L)]) if f"transformer.h.0.{k}" in tensors else None
    p = {"wte": tensors["transformer.wte.weight"], "wpe": tensors["transformer.wpe.weight"],
         "ln1w": stack("ln_1.weight"), "ln1b": stack("ln_1.bias"), "qkvw": stack("attn.c_attn.weight"),
         "qkvb": stack("attn.c_attn.bias"), "attprojw": stack("attn.c_proj.weight"),
         "attprojb": stack("attn.c_proj.bias"), "ln2w": stack("ln_2.weight"), "ln2b": stack("ln_2.bias"),
         "fcw": stack("mlp.c_fc.weight"), "fcb": stack("mlp.c_fc.bias"), "fcprojw": stack("mlp.c_proj.weight"),
         "fcprojb": stack("mlp.c_proj.bias"), "lnfw": tensors["transformer.ln_f.weight"],
         "lnfb": tensors.get("transformer.ln_f.bias")}
    cfg = {"C": C, "NH": NH, "L": L, "attn_x": meta["attn"] == "x", "gamma": float(meta["gamma"])}

    # README: window w starts at token w*T; inputs its first T tokens, targets the next T
    tok = torch.frombuffer(bytearray(open(val_path, "rb").read()), dtype=torch.int16).long() & 0xFFFF
    if (windows - 1) * T + T + 1 > tok.numel():
        fail("the validation file is shorter than the windows (the test keeps it long enough)")
    idx = torch.stack([tok[w * T:w * T + T] for w in range(windows)])
    tgt = torch.stack([tok[w * T + 1:w * T + T + 1] for w in range(windows)])
    with torch.no_grad():
        logits = torch_ref.forward(p, cfg, idx)[..., :V]
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1)).item()
    rel = abs(loss - want) / abs(want)
    print(f"safetensors_check: {len(header)} tensors; val loss {loss:.9f} (PyTorch) vs {want:.9f} "
          f"(train_gpt): {rel:.2e} relative")
    if rel > 1e-5:
        fail(f"val loss differs by {rel:.2e} relative (more than 1e-5)")


if __name__ == "__main__":
    main()
