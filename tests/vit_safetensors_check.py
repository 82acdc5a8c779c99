#!/usr/bin/python3
"""An independent reader of train_vit's --export file (tests/test_vit_cli.sh).

Parses the safetensors file with json + struct only (not the project's code)
and checks its header: every setting in __metadata__, exactly the state_dict
names of kentaroy47/vision-transformers-cifar10's ViT-small (models/vit_small.py)
or plain ViT (models/vit.py) with their shapes, each name once, F32 tensors
whose offsets tile the data exactly. Then it builds the model in PyTorch from
the file through tests/torch_ref_vit.py's forward, evaluates the test split of
an IDX dataset (normalised with MEAN and STD, as train_vit does) and compares
the mean cross-entropy with the val loss train_vit reported.

    /usr/bin/python3 tests/vit_safetensors_check.py FILE DATA_DIR MEAN STD VAL_LOSS

The attention comes from __metadata__: attn (one kind, std, x or xsa, or a
comma list of one per layer), gamma, and gamma_learn (none, layer or head;
missing in files from before learned gammas: none). With a learned gamma each
non-std layer i has transformer.layers.{i}.0.fn.gamma, shape (1) or (heads),
and the model uses those values (tests/torch_ref.py: variant).

DATA_DIR holds t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (plain).
With LAYERS_CSV=RUN/layers.csv and LAYERS_BATCH=B in the environment it also
checks the per-layer diagnostic of the first test batch (tests/layers_ref.py).
Exits non-zero with one line naming the first problem.
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
import torch_ref_vit  # noqa: E402

SETTINGS = ("format", "model", "attn", "gamma", "channels", "image_height", "image_width",
            "patch_size", "num_classes", "dim", "depth", "heads", "dim_head", "mlp_dim")


def fail(msg):
    sys.exit(f"vit_safetensors_check: {msg}")


def kinds_of(meta):
    """attn: one kind for every layer, or one per layer"""
    L = int(meta["depth"])
    try:
        return torch_ref.parse_kinds(meta["attn"], L)
    except ValueError as e:
        fail(f"__metadata__ {e}: expected one of {torch_ref.KINDS} or a comma list of {L}")


def learn_of(meta):
    try:
        return torch_ref.learn_of(meta)
    except ValueError as e:
        fail(f"__metadata__ {e}")


def expected_shapes(meta):
    """The reference's state_dict names and shapes, from its module structure,
    and our learned gammas (not in the reference)."""
    small = meta["model"] == "vit_small"
    C, P, K = int(meta["channels"]), int(meta["patch_size"]), int(meta["num_classes"])
    D, L, NH, M = int(meta["dim"]), int(meta["depth"]), int(meta["heads"]), int(meta["mlp_dim"])
    kinds, G = kinds_of(meta), {"none": 0, "layer": 1, "head": NH}[learn_of(meta)]
    if int(meta["dim_head"]) * NH != D:
        fail(f"dim_head {meta['dim_head']} x heads {NH} != dim {D}")
    T = (int(meta["image_height"]) // P) * (int(meta["image_width"]) // P) + 1
    PD = P * P * C * (5 if small else 1)
    s = {"pos_embedding": [1, T, D], "cls_token": [1, 1, D],
         "mlp_head.0.weight": [D], "mlp_head.0.bias": [D],
         "mlp_head.1.weight": [K, D], "mlp_head.1.bias": [K]}
    if small:   # SPT: Sequential(Rearrange, LayerNorm, Linear)
        s.update({"to_patch_embedding.to_patch_tokens.1.weight": [PD],
                  "to_patch_embedding.to_patch_tokens.1.bias": [PD],
                  "to_patch_embedding.to_patch_tokens.2.weight": [D, PD],
                  "to_patch_embedding.to_patch_tokens.2.bias": [D]})
    else:       # Sequential(Rearrange, Linear)
        s.update({"to_patch_embedding.1.weight": [D, PD], "to_patch_embedding.1.bias": [D]})
    project_out = small or NH != 1
    for i in range(L):
        a, f = f"transformer.layers.{i}.0.", f"transformer.layers.{i}.1."
        s.update({a + "norm.weight": [D], a + "norm.bias": [D], a + "fn.to_qkv.weight": [3 * D, D],
                  f + "norm.weight": [D], f + "norm.bias": [D],
                  f + "fn.net.0.weight": [M, D], f + "fn.net.0.bias": [M],
                  f + "fn.net.3.weight": [D, M], f + "fn.net.3.bias": [D]})
        if small:
            s[a + "fn.temperature"] = []   # a scalar nn.Parameter
        if project_out:
            s.update({a + "fn.to_out.0.weight": [D, D], a + "fn.to_out.0.bias": [D]})
        if G and kinds[i] != "std":   # the learned gammas of the variant layers
            s[a + "fn.gamma"] = [G]
    return s


def read_idx(path, magic):
    data = open(path, "rb").read()
    ndim = magic & 0xFF
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    (got,) = struct.unpack_from(">I", data, 0)
    if got != magic:
        fail(f"{path}: IDX magic {got:#x}, expected {magic:#x}")
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).view(dims)


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: vit_safetensors_check.py FILE DATA_DIR MEAN STD VAL_LOSS")
    path, data_dir = sys.argv[1], sys.argv[2]
    mean, std, want = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    def shapes(meta):
        missing = [k for k in SETTINGS if k not in meta]
        if missing or meta["format"] != "pt":
            fail(f"__metadata__ lacks {missing} or format is not pt: {meta}")
        return expected_shapes(meta)
    meta, t = safetensors_read.load(path, shapes, fail)
    for key, value in (("normalize_mean", mean), ("normalize_std", std)):
        if abs(float(meta.get(key, "nan")) - value) > 1e-6:
            fail(f"__metadata__ {key}={meta.get(key)}, expected {value}")

    # the reference's tensors as torch_ref_vit.forward takes them (per-layer ones stacked)
    small = meta["model"] == "vit_small"
    L = int(meta["depth"])
    patch = "to_patch_embedding.to_patch_tokens.2" if small else "to_patch_embedding.1"

    def stack(suffix):
        key = f"transformer.layers.0.{suffix}"
        return torch.stack([t[f"transformer.layers.{i}.{suffix}"] for i in range(L)]) if key in t else None
    p = {"patch_lnw": t.get("to_patch_embedding.to_patch_tokens.1.weight"),
         "patch_lnb": t.get("to_patch_embedding.to_patch_tokens.1.bias"),
         "patch_w": t[patch + ".weight"], "patch_b": t[patch + ".bias"],
         "cls": t["cls_token"].view(-1), "pos": t["pos_embedding"][0],
         "ln1w": stack("0.norm.weight"), "ln1b": stack("0.norm.bias"),
         "qkvw": stack("0.fn.to_qkv.weight"), "log_temp": stack("0.fn.temperature"),
         "attprojw": stack("0.fn.to_out.0.weight"), "attprojb": stack("0.fn.to_out.0.bias"),
         "ln2w": stack("1.norm.weight"), "ln2b": stack("1.norm.bias"),
         "fcw": stack("1.fn.net.0.weight"), "fcb": stack("1.fn.net.0.bias"),
         "fcprojw": stack("1.fn.net.3.weight"), "fcprojb": stack("1.fn.net.3.bias"),
         "head_lnw": t["mlp_head.0.weight"], "head_lnb": t["mlp_head.0.bias"],
         "head_w": t["mlp_head.1.weight"], "head_b": t["mlp_head.1.bias"]}
    # torch_ref's attn_gamma: the variant layers' learned values in layer order
    learned = [t[f"transformer.layers.{i}.0.fn.gamma"] for i in range(L) if f"transformer.layers.{i}.0.fn.gamma" in t]
    p["attn_gamma"] = torch.stack(learned) if learned else None
    cfg = {"kind": torch_ref_vit.VIT_SMALL if small else torch_ref_vit.VIT_PLAIN,
           "D": int(meta["dim"]), "NH": int(meta["heads"]), "L": L, "P": int(meta["patch_size"]),
           "kinds": kinds_of(meta), "gamma": float(meta["gamma"]), "learn": learn_of(meta)}

    # the test split, ToTensor + Normalize in float32 as train_vit computes it
    px = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte"), 0x803)
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte"), 0x801).long()
    images = ((px.float() / 255.0 - torch.tensor(mean, dtype=torch.float32))
              / torch.tensor(std, dtype=torch.float32)).double().unsqueeze(1)
    if list(images.shape[1:]) != [int(meta["channels"]), int(meta["image_height"]), int(meta["image_width"])]:
        fail(f"the test images are {list(images.shape[1:])}, the model's {meta}")
    with torch.no_grad():
        loss = F.cross_entropy(torch_ref_vit.forward(p, cfg, images), labels).item()
    rel = abs(loss - want) / abs(want)
    print(f"vit_safetensors_check: {meta['model']} --attn={meta['attn']} --gamma={meta['gamma']} "
          f"--gamma-learn={cfg['learn']}, heads={meta['heads']}: "
          f"{len(t)} tensors; val loss {want:.9f} (train_vit) vs torch {loss:.9f}: {rel:.2e} relative")
    if rel > 1e-5:
        fail(f"val loss differs by {rel:.2e} relative (more than 1e-5)")
    if os.environ.get("LAYERS_CSV"):   # the diagnostic of the first test batch, recomputed
        trace = []
        with torch.no_grad():
            torch_ref_vit.forward(p, cfg, images[:int(os.environ["LAYERS_BATCH"])], trace)
        gammas = layers_ref.expected_gammas(cfg["kinds"], cfg["gamma"],
                                            [torch_ref.layer_gamma(p, cfg, i) for i in range(L)]
                                            if p["attn_gamma"] is not None else None)
        print("vit_safetensors_check: " + layers_ref.check(trace, gammas, os.environ["LAYERS_CSV"], fail))


if __name__ == "__main__":
    main()
