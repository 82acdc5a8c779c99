"""The per-layer diagnostic of layers.csv (../shared/spec/variants.md),
recomputed from a PyTorch model's own tensors, for tests/safetensors_check.py
(GPT) and tests/vit_safetensors_check.py (ViT).

check(trace, gammas, path, fail): trace holds each layer's (y, v, o),
(B, NH, T, hs) each, from the first evaluation batch, and gammas each layer's
coefficient as layers.csv reports it (expected_gammas); compares disc, cos_yv
and out_rms with the CSV's rows of its last step (1e-4 relative), and gamma
(1e-6 relative; empty for std), and returns a one-line summary. fail(msg) must
not return.
"""
import torch


def expected_gammas(kinds, gamma, learned):
    """layers.csv's gamma per layer: None for std, the fixed gamma, or the mean of
    the layer's learned values (learned: one tensor per layer, None for std, or
    None altogether when gamma is fixed)"""
    out = []
    for l, kind in enumerate(kinds):
        if kind == "std":
            out.append(None)
        elif learned is None:
            out.append(float(gamma))
        else:
            out.append(learned[l].double().mean().item())
    return out


def check(trace, gammas, path, fail):
    rows = [line.split(",") for line in open(path).read().split("\n")[1:] if line]
    if not rows:
        fail(f"{path}: no rows")
    last = max(int(r[0]) for r in rows)
    got = {int(r[1]): r for r in rows if int(r[0]) == last}
    if sorted(got) != list(range(len(trace))):
        fail(f"{path}: layers {sorted(got)} at step {last}, the model has {len(trace)}")
    worst = 0.0
    for l, (y, v, o) in enumerate(trace):
        disc = ((y - v).pow(2).sum() / v.pow(2).sum()).sqrt().item()
        yn, vn = y.norm(dim=-1), v.norm(dim=-1)
        cos = torch.where((yn > 0) & (vn > 0), (y * v).sum(-1) / (yn * vn), torch.zeros_like(yn)).mean().item()
        out_rms = o.pow(2).mean().sqrt().item()
        row = got[l]
        g = gammas[l]
        if (row[4] != "") != (g is not None) or (g is not None and abs(float(row[4]) - g) > 1e-6 * max(1.0, abs(g))):
            fail(f"{path}: layer {l} gamma '{row[4]}', expected {'empty' if g is None else f'{g:.9g}'}")
        for name, want, cell in (("disc", disc, row[2]), ("cos_yv", cos, row[3]), ("out_rms", out_rms, row[5])):
            rel = abs(float(cell) - want) / max(abs(want), 1e-12)
            worst = max(worst, rel)
            if rel > 1e-4:
                fail(f"{path}: layer {l} {name} {cell}, PyTorch {want:.9g} ({rel:.2e} relative)")
    return f"layers.csv at step {last}: {len(trace)} layers, worst {worst:.2e} relative"
