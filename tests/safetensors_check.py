#!/usr/bin/python3
"""An independent reader of train_gpt's weight files (tests/test_cli.sh).

A safetensors file (--export) is parsed with json + struct only (not the
project's code) and its header checked (F32 tensors, nanoGPT's names and
shapes, offsets that tile the data exactly); an llm.c GPT-2 checkpoint (what
--init-from also reads: formats.md) is parsed from its header. Either way the
GPT is built in PyTorch (tests/torch_ref.py's forward), evaluated on the
validation windows README documents for --sample=sequential, and the loss
compared with train_gpt's.

    /usr/bin/python3 tests/safetensors_check.py FILE VAL_BIN EVAL_WINDOWS VAL_LOSS [ATTN GAMMA SEQ]

VAL_BIN is a nanoGPT uint16 token file; EVAL_WINDOWS = eval-batches x batch.
ATTN and GAMMA say which attention evaluates an llm.c file, which records
none (ATTN one kind or a comma list per layer, as --attn; gamma fixed), and
SEQ the block size of the run (windows of SEQ tokens, wpe cropped).

Our export's __metadata__ says the attention: attn (one kind, std, x or xsa,
or a comma list of one per layer), gamma, and gamma_learn (none, layer or head;
missing in files from before learned gammas: none). With a learned gamma each
non-std layer l has transformer.h.{l}.attn.gamma, shape (1) or (n_head), and
the model uses those values (tests/torch_ref.py: variant).

With LAYERS_CSV=RUN/layers.csv and LAYERS_BATCH=B in the environment it also
recomputes the per-layer diagnostic (variants.md: disc, cos_yv, out_rms over
the first validation batch, windows 0..B-1) from the PyTorch model's own Y, V
and O, and compares it with the file's rows of its last step (1e-4 relative).
"""
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layers_ref  # noqa: E402
import safetensors_read  # noqa: E402
import torch_ref  # noqa: E402


def fail(msg):
    sys.exit(f"safetensors_check: {msg}")


def read_llmc(data):
    """(params, V, T, L, NH, C) of an llm.c checkpoint: 256 int32, then the tensors in llm.c's order"""
    h = struct.unpack_from("<256i", data, 0)
    if h[0] != 20240326 or h[1] not in (3, 5):
        fail(f"llm.c header {h[0]} version {h[1]}")
    T, V, L, NH, C, Vp = h[2:8]
    dtype = torch.float32 if h[1] == 3 else torch.bfloat16
    shapes = [("wte", [Vp, C]), ("wpe", [T, C]), ("ln1w", [L, C]), ("ln1b", [L, C]), ("qkvw", [L, 3 * C, C]),
              ("qkvb", [L, 3 * C]), ("attprojw", [L, C, C]), ("attprojb", [L, C]), ("ln2w", [L, C]),
              ("ln2b", [L, C]), ("fcw", [L, 4 * C, C]), ("fcb", [L, 4 * C]), ("fcprojw", [L, C, 4 * C]),
              ("fcprojb", [L, C]), ("lnfw", [C]), ("lnfb", [C])]
    size = 4 if h[1] == 3 else 2
    off, p = 1024, {}
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        p[name] = torch.frombuffer(bytearray(data[off:off + n * size]), dtype=dtype).double().view(shape)
        off += n * size
    if off != len(data):
        fail(f"llm.c file of {len(data)} bytes, its shapes need {off}")
    return p, V, T, L, NH, C


def kinds_of(text, L):
    """--attn / __metadata__ attn: one kind for every layer, or one per layer"""
    try:
        return torch_ref.parse_kinds(text, L)
    except ValueError as e:
        fail(f"__metadata__ {e}: expected one of {torch_ref.KINDS} or a comma list of {L}")


def learn_of(meta):
    try:
        return torch_ref.learn_of(meta)
    except ValueError as e:
        fail(f"__metadata__ {e}")


def gammas_per_layer(meta):
    return {"none": 0, "layer": 1, "head": int(meta["n_head"])}[learn_of(meta)]


def main():
    path, val_path, windows, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    data = open(path, "rb").read()
    if data[:4] == struct.pack("<i", 20240326):
        p, V, T, L, NH, C = read_llmc(data)
        cfg = {"C": C, "NH": NH, "L": L, "kinds": kinds_of(sys.argv[5], L), "gamma": float(sys.argv[6]),
               "learn": "none"}
        T = int(sys.argv[7])
        p["wpe"] = p["wpe"][:T]
        evaluate(p, cfg, V, T, val_path, windows, want, "llm.c checkpoint")
        return
    def shapes(meta):
        for key in ("n_layer", "n_embd", "n_head", "vocab_size", "padded_vocab_size", "block_size", "bias",
                    "attn", "gamma"):
            if key not in meta:
                fail(f"__metadata__ lacks {key}: {meta}")
        L, C = int(meta["n_layer"]), int(meta["n_embd"])
        Vp, T, bias = int(meta["padded_vocab_size"]), int(meta["block_size"]), int(meta["bias"])
        want = {"transformer.wte.weight": [Vp, C], "transformer.wpe.weight": [T, C], "transformer.ln_f.weight": [C]}
        if bias:
            want["transformer.ln_f.bias"] = [C]
        layer = {"ln_1.weight": [C], "attn.c_attn.weight": [3 * C, C], "attn.c_proj.weight": [C, C],
                 "ln_2.weight": [C], "mlp.c_fc.weight": [4 * C, C], "mlp.c_proj.weight": [C, 4 * C]}
        if bias:
            layer.update({"ln_1.bias": [C], "attn.c_attn.bias": [3 * C], "attn.c_proj.bias": [C],
                          "ln_2.bias": [C], "mlp.c_fc.bias": [4 * C], "mlp.c_proj.bias": [C]})
        kinds, G = kinds_of(meta["attn"], L), gammas_per_layer(meta)
        for l in range(L):
            for k, v in layer.items():
                want[f"transformer.h.{l}.{k}"] = v
            if G and kinds[l] != "std":   # the learned gammas of the variant layers
                want[f"transformer.h.{l}.attn.gamma"] = [G]
        return want
    meta, tensors = safetensors_read.load(path, shapes, fail)
    L, C, NH = int(meta["n_layer"]), int(meta["n_embd"]), int(meta["n_head"])
    V, T = int(meta["vocab_size"]), int(meta["block_size"])

    def stack(k):
        return torch.stack([tensors[f"transformer.h.{l}.{k}"] for l in range(L)]) if f"transformer.h.0.{k}" in tensors else None
    p = {"wte": tensors["transformer.wte.weight"], "wpe": tensors["transformer.wpe.weight"],
         "ln1w": stack("ln_1.weight"), "ln1b": stack("ln_1.bias"), "qkvw": stack("attn.c_attn.weight"),
         "qkvb": stack("attn.c_attn.bias"), "attprojw": stack("attn.c_proj.weight"),
         "attprojb": stack("attn.c_proj.bias"), "ln2w": stack("ln_2.weight"), "ln2b": stack("ln_2.bias"),
         "fcw": stack("mlp.c_fc.weight"), "fcb": stack("mlp.c_fc.bias"), "fcprojw": stack("mlp.c_proj.weight"),
         "fcprojb": stack("mlp.c_proj.bias"), "lnfw": tensors["transformer.ln_f.weight"],
         "lnfb": tensors.get("transformer.ln_f.bias")}
    cfg = {"C": C, "NH": NH, "L": L, "kinds": kinds_of(meta["attn"], L), "gamma": float(meta["gamma"]),
           "learn": learn_of(meta)}
    # torch_ref's attn_gamma: the variant layers' learned values in layer order
    learned = [tensors[f"transformer.h.{l}.attn.gamma"] for l in range(L) if f"transformer.h.{l}.attn.gamma" in tensors]
    p["attn_gamma"] = torch.stack(learned) if learned else None
    evaluate(p, cfg, V, T, val_path, windows, want,
             f"{len(tensors)} tensors, attn {meta['attn']}, gamma {meta['gamma']}, gamma_learn {cfg['learn']}")


def evaluate(p, cfg, V, T, val_path, windows, want, what):
    # README: window w starts at token w*T; inputs its first T tokens, targets the next T
    tok = torch.frombuffer(bytearray(open(val_path, "rb").read()), dtype=torch.int16).long() & 0xFFFF
    if (windows - 1) * T + T + 1 > tok.numel():
        fail("the validation file is shorter than the windows (the test keeps it long enough)")
    idx = torch.stack([tok[w * T:w * T + T] for w in range(windows)])
    tgt = torch.stack([tok[w * T + 1:w * T + T + 1] for w in range(windows)])
    with torch.no_grad():
        logits = torch_ref.forward(p, cfg, idx)[..., :V]
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1)).item()
    if os.environ.get("LAYERS_CSV"):
        check_layers(p, cfg, idx[:int(os.environ["LAYERS_BATCH"])], os.environ["LAYERS_CSV"])
    rel = abs(loss - want) / abs(want)
    print(f"safetensors_check: {what}; val loss {loss:.9f} (PyTorch) vs {want:.9f} "
          f"(train_gpt): {rel:.2e} relative")
    if rel > 1e-5:
        fail(f"val loss differs by {rel:.2e} relative (more than 1e-5)")


def check_layers(p, cfg, idx, path):
    trace = []
    with torch.no_grad():
        torch_ref.forward(p, cfg, idx, trace)
    gammas = layers_ref.expected_gammas(cfg["kinds"], cfg["gamma"],
                                        [torch_ref.layer_gamma(p, cfg, l) for l in range(cfg["L"])]
                                        if p.get("attn_gamma") is not None else None)
    print("safetensors_check: " + layers_ref.check(trace, gammas, path, fail))


if __name__ == "__main__":
    main()
