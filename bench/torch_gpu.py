#!/usr/bin/env python3
"""The PyTorch side of bench/gpu.sh (and its data writer): GPT-2 124M in the
nanoGPT style, the paper's ViT-small (kentaroy47/vision-transformers-cifar10's
vit_small: SPT + LSA), and the attention op alone, each with standard
attention and AttentionX (O = Y - gamma V per head, V the token's own value),
timed per optimizer step as our trainers time theirs.

    torch_gpu.py info
    torch_gpu.py tokens DIR VOCAB N            DIR/tok_train.bin (N tokens), DIR/tok_val.bin (N/16)
    torch_gpu.py cifar DIR TRAIN TEST          random CIFAR-10 binary batches in DIR
    torch_gpu.py gpt --data FILE --batch B [--layers 12 --heads 12 --embd 768 --seq 1024
                     --vocab 50257 --attn std,x --gamma 1 --warmup 5 --steps 20
                     --precision bf16|tf32|fp32 --compile 1 --device cuda]
    torch_gpu.py vit --data-dir DIR --batch B [--dim 512 --depth 6 --heads 8 --mlp-dim 512
                     --patch 4 --attn std,x --precision bf16,tf32 --warmup 3 --steps 48 --compile 0]
    torch_gpu.py op [--T 256,1024,4096 --tokens 4194304 --heads 16 --hs 64 --dtype bf16]

`tokens` and `cifar` need only the standard library (no numpy, no torch), so
gpu.sh can write the data for our trainers where torch is missing. Every
measurement prints one line

    RESULT kind=gpt attn=std batch=32 precision=bf16 ms_median=... tok_per_s=... ...

(key=value fields; gpu.sh reads them), and a model that does not fit prints
`OOM kind=gpt attn=std batch=32` and the process exits with status 4 after the
results it has (gpu.sh then retries the rest at a smaller batch).

Conventions:
- GPT: token + learned position embedding, 12 pre-LN blocks (fused qkv Linear
  with bias, causal SDPA with is_causal=True, which selects flash attention on
  a Hopper GPU; exact-erf GELU MLP 4x), final LayerNorm, lm_head tied to the
  token embedding; the embedding padded to 50304 rows as ours (src/gpt.c) and
  nanoGPT, the loss over the 50257 real columns. Init N(0, 0.02), residual
  projections N(0, 0.02/sqrt(2L)). AdamW (fused on CUDA) lr 6e-4, betas
  (0.9, 0.95), weight decay 0.1 on 2-D tensors, gradient clipping at 1 (as
  train_gpt's defaults). bf16: torch.autocast(bfloat16) over forward and loss,
  fp32 master weights, TF32 allowed for the rest (nanoGPT's setting).
  A step: batch (random windows of T+1 tokens of the file, drawn on the
  device), forward, backward, clip, AdamW step, loss.item() (which waits for
  the device, as train_gpt's per-step log does). Step times by
  time.perf_counter; the median of the timed steps after the warmup (the
  first warmup step holds torch.compile's compilation; its time is printed as
  first_step_s).
- ViT-small: SPT (the image and 4 one-pixel shifts, 15 channels, 4x4 patches
  flattened (row, col, channel) -> LayerNorm(240) -> Linear(240, 512)), cls
  token and position embedding N(0, 1), 6 pre-LN blocks of LSA (qkv without
  bias, scores scaled by exp(t) with t learned per block from log(64^-0.5),
  the diagonal masked) and an MLP 512 -> 512 -> 512 with exact GELU; dropout
  0.1 after the embedding, the attention projection, GELU and the MLP output;
  head LayerNorm + Linear(512, 10) on the cls token. Attention through SDPA
  with a boolean mask (q pre-multiplied by exp(t), scale 1, so t gets its
  gradient). Adam lr 1e-4 (the reference repository's optimizer; torch has no
  SET-Adam), no augmentation, the 50,000 images resident on the device as
  uint8 and normalised per batch. Eager by default, as the reference
  repository runs (--compile 1 to compile).
- op: F.scaled_dot_product_attention(q, k, v, is_causal=True) forward and
  forward + backward (torch.autograd.grad), B x NH = tokens / T, head size 64,
  bf16, timed with CUDA events (median of the repeats after warmup). FLOPs:
  forward 4 B NH T^2 hs (QK^T and PV), halved for the causal mask; backward
  2.5 x forward; forward + backward 3.5 x forward (FlashAttention's
  benchmark convention). Also the measured ceilings: a bf16 and a TF32
  8192^3 matmul and a device-to-device copy.
"""
import argparse
import math
import os
import random
import statistics
import sys
import time
from array import array


def out(line):
    print(line, flush=True)


# --- data (standard library only) ------------------------------------------------------

def write_tokens(d, vocab, n):
    """nanoGPT's headerless uint16 token files of uniform random ids < vocab."""
    os.makedirs(d, exist_ok=True)
    r = random.Random(1)
    for split, count in (("train", n), ("val", max(n // 16, 65536))):
        raw = array("H")
        raw.frombytes(r.randbytes(2 * count))
        tok = array("H", [t % vocab for t in raw])
        if sys.byteorder != "little":
            tok.byteswap()
        with open(os.path.join(d, f"tok_{split}.bin"), "wb") as f:
            tok.tofile(f)


def write_cifar(d, train, test):
    """CIFAR-10's binary version: records of 1 label byte + 3072 pixel bytes;
    `train` records over data_batch_1..5.bin, `test` in test_batch.bin."""
    os.makedirs(d, exist_ok=True)
    r = random.Random(2)

    def records(n):
        rec = bytearray(r.randbytes(n * 3073))
        rec[0::3073] = bytes(b % 10 for b in rec[0::3073])
        return rec

    per_file = [train // 5 + (i < train % 5) for i in range(5)]
    for i, n in enumerate(per_file):
        with open(os.path.join(d, f"data_batch_{i + 1}.bin"), "wb") as f:
            f.write(records(n))
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(records(test))


# --- torch helpers ------------------------------------------------------------------

def torch_setup(device, precision):
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpu: torch sees no CUDA device")
    tf32 = precision in ("bf16", "tf32")
    if hasattr(torch.backends, "cuda"):
        torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return torch


def is_oom(e):
    import torch
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e).lower()


def have_sdpa():
    import torch.nn.functional as F
    return hasattr(F, "scaled_dot_product_attention")


def attention(q, k, v, causal=False, mask=None, scale=None):
    """SDPA where this torch has it, else the same in plain ops (old torch, CPU dry runs).
    mask: boolean, True = attend."""
    import torch
    import torch.nn.functional as F
    if have_sdpa():
        kw = {}
        if scale is not None:
            kw["scale"] = scale
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, **kw)
    s = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    T = q.shape[-2]
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1) @ v


def sdpa_backend_name(device):
    if not have_sdpa():
        return "manual"
    return "flash" if device == "cuda" else "sdpa-cpu"


def autocast(torch, device, precision):
    import contextlib
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_adam(torch, params_decay, params_other, lr, betas, wd, device, decoupled):
    groups = [{"params": params_decay, "weight_decay": wd}, {"params": params_other, "weight_decay": 0.0}]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    if device == "cuda":
        try:
            return cls(groups, lr=lr, betas=betas, eps=1e-8, fused=True), "fused"
        except (TypeError, RuntimeError):
            pass
    return cls(groups, lr=lr, betas=betas, eps=1e-8), "foreach/default"


def maybe_compile(torch, model, want):
    if want and hasattr(torch, "compile"):
        return torch.compile(model), 1
    return model, 0


def mib(x):
    return x / 2 ** 20


def memory_stats(torch, device):
    if device != "cuda":
        return "peak_alloc_mib=- peak_reserved_mib=-"
    return (f"peak_alloc_mib={mib(torch.cuda.max_memory_allocated()):.0f} "
            f"peak_reserved_mib={mib(torch.cuda.max_memory_reserved()):.0f}")


def timed_loop(torch, device, step, warmup, steps):
    """Runs step() warmup + steps times; returns (times of the timed steps, first step's
    time, last loss). step() ends with loss.item(), which waits for the device."""
    times, first, loss = [], None, float("nan")
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        loss = step(s)
        dt = time.perf_counter() - t0
        if s == 0:
            first = dt
        if s >= warmup:
            times.append(dt)
    return times, first, loss


def free(torch, device):
    import gc
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# --- GPT-2 -------------------------------------------------------------------------

def gpt_model(torch, a, attn_kind):
    nn, F = torch.nn, torch.nn.functional
    C, NH, L, T = a.embd, a.heads, a.layers, a.seq
    Vp = (a.vocab + 63) // 64 * 64

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, T_, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T_, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = attention(q, k, v, causal=True)
            if attn_kind == "x":
                y = y - a.gamma * v                      # AttentionX: the token's own value
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T_, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(C), Attn(), nn.LayerNorm(C)
            self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(T, C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
                elif name.endswith("weight") and p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for b in self.h:
                x = b(x)
            logits = F.linear(self.ln_f(x), self.wte.weight)    # lm_head tied to wte
            return F.cross_entropy(logits[..., :a.vocab].reshape(-1, a.vocab).float(), targets.reshape(-1))

    return GPT()


def run_gpt(a):
    torch = torch_setup(a.device, a.precision)
    dev = a.device
    raw = open(a.data, "rb").read()
    data = torch.frombuffer(bytearray(raw), dtype=torch.int16).to(dev).to(torch.int32) & 0xFFFF
    n = data.numel()
    offs = torch.arange(a.seq + 1, device=dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(1)
    status = 0
    for kind in a.attn.split(","):
        torch.manual_seed(1)
        free(torch, dev)
        model = opt = cmodel = step = params = None
        try:
            model = gpt_model(torch, a, kind).to(dev)
            nparams = sum(p.numel() for p in model.parameters()) - (model.wte.weight.shape[0] - a.vocab) * a.embd
            decay = [p for p in model.parameters() if p.dim() >= 2]
            other = [p for p in model.parameters() if p.dim() < 2]
            opt, fused = make_adam(torch, decay, other, 6e-4, (0.9, 0.95), 0.1, dev, True)
            cmodel, compiled = maybe_compile(torch, model, a.compile)
            params = list(model.parameters())

            def step(_):
                ix = torch.randint(0, n - a.seq - 1, (a.batch, 1), device=dev, generator=gen)
                win = data[ix + offs].long()
                x, y = win[:, :-1], win[:, 1:]
                with autocast(torch, dev, a.precision):
                    loss = cmodel(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss.item()

            times, first, loss = timed_loop(torch, dev, step, a.warmup, a.steps)
        except Exception as e:  # noqa: BLE001  (an OOM is reported, anything else re-raised)
            if not is_oom(e):
                raise
            out(f"OOM kind=gpt attn={kind} batch={a.batch} precision={a.precision}")
            status = 4
            model = opt = cmodel = step = params = None
            free(torch, dev)
            continue
        med = statistics.median(times)
        out(f"RESULT kind=gpt attn={kind} batch={a.batch} seq={a.seq} precision={a.precision} "
            f"compiled={compiled} sdpa={sdpa_backend_name(dev)} optim=adamw-{fused} steps={len(times)} "
            f"ms_median={1e3 * med:.3f} ms_mean={1e3 * statistics.mean(times):.3f} "
            f"ms_min={1e3 * min(times):.3f} tok_per_s={a.batch * a.seq / med:.1f} first_step_s={first:.2f} "
            f"params={nparams} loss={loss:.4f} {memory_stats(torch, dev)}")
        model = opt = cmodel = step = params = None
    return status


# --- ViT-small ---------------------------------------------------------------------

def vit_model(torch, a, attn_kind):
    nn, F = torch.nn, torch.nn.functional
    D, L, NH, M, P = a.dim, a.depth, a.heads, a.mlp_dim, a.patch
    hs = D // NH
    N = (32 // P) ** 2
    T = N + 1
    PD = 5 * 3 * P * P

    class LSA(nn.Module):
        def __init__(self):
            super().__init__()
            self.to_qkv = nn.Linear(D, 3 * D, bias=False)
            self.temperature = nn.Parameter(torch.tensor(math.log(hs ** -0.5)))
            self.to_out = nn.Linear(D, D)
            self.register_buffer("mask", ~torch.eye(T, dtype=torch.bool), persistent=False)

        def forward(self, x):
            B = x.shape[0]
            q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
            y = attention(q * self.temperature.exp(), k, v, mask=self.mask, scale=1.0)
            if attn_kind == "x":
                y = y - a.gamma * v
            return self.to_out(y.transpose(1, 2).reshape(B, T, D))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(D), LSA(), nn.LayerNorm(D)
            self.fc1, self.fc2 = nn.Linear(D, M), nn.Linear(M, D)
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.ln2(x))))))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_ln, self.patch_lin = nn.LayerNorm(PD), nn.Linear(PD, D)
            self.cls = nn.Parameter(torch.randn(1, 1, D))
            self.pos = nn.Parameter(torch.randn(1, T, D))
            self.emb_drop = nn.Dropout(0.1)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.head_ln, self.head = nn.LayerNorm(D), nn.Linear(D, 10)

        def forward(self, img):
            B = img.shape[0]
            shifted = [img] + [F.pad(img, s) for s in ((1, -1, 0, 0), (-1, 1, 0, 0), (0, 0, 1, -1), (0, 0, -1, 1))]
            x = torch.cat(shifted, dim=1)                                    # B, 15, 32, 32
            x = x.view(B, 15, 32 // P, P, 32 // P, P).permute(0, 2, 4, 3, 5, 1).reshape(B, N, PD)
            x = self.patch_lin(self.patch_ln(x))
            x = self.emb_drop(torch.cat([self.cls.expand(B, -1, -1), x], dim=1) + self.pos)
            for b in self.blocks:
                x = b(x)
            return self.head(self.head_ln(x[:, 0]))

    return ViT()


def read_cifar(torch, d, dev):
    recs = b"".join(open(os.path.join(d, f"data_batch_{i}.bin"), "rb").read() for i in range(1, 6))
    t = torch.frombuffer(bytearray(recs), dtype=torch.uint8).view(-1, 3073).to(dev)
    return t[:, 1:].reshape(-1, 3, 32, 32).contiguous(), t[:, 0].long().contiguous()


def run_vit(a):
    import torch
    dev = a.device
    images, labels = read_cifar(torch, a.data_dir, dev)
    n = images.shape[0]
    mean = torch.tensor([0.4914, 0.4822, 0.4465], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010], device=dev).view(1, 3, 1, 1)
    if a.warmup + a.steps > n // a.batch:
        sys.exit(f"torch_gpu: warmup + steps ({a.warmup + a.steps}) exceed the full batches of one epoch "
                 f"({n // a.batch})")
    status = 0
    for precision in a.precision.split(","):
        torch = torch_setup(dev, precision)
        for kind in a.attn.split(","):
            torch.manual_seed(1)
            free(torch, dev)
            model = opt = cmodel = step = None
            try:
                model = vit_model(torch, a, kind).to(dev)
                nparams = sum(p.numel() for p in model.parameters())
                opt, fused = make_adam(torch, list(model.parameters()), [], 1e-4, (0.9, 0.999), 0.0, dev, False)
                cmodel, compiled = maybe_compile(torch, model, a.compile)
                model.train()
                order = torch.randperm(n, device=dev)

                def step(s):
                    idx = order[s * a.batch:(s + 1) * a.batch]
                    x = (images[idx].float() / 255 - mean) / std
                    with autocast(torch, dev, precision):
                        loss = torch.nn.functional.cross_entropy(cmodel(x).float(), labels[idx])
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    return loss.item()

                times, first, loss = timed_loop(torch, dev, step, a.warmup, a.steps)
            except Exception as e:  # noqa: BLE001
                if not is_oom(e):
                    raise
                out(f"OOM kind=vit attn={kind} batch={a.batch} precision={precision}")
                status = 4
                model = opt = cmodel = step = None
                free(torch, dev)
                continue
            med = statistics.median(times)
            per_epoch = n / (a.batch / med)
            out(f"RESULT kind=vit attn={kind} batch={a.batch} precision={precision} compiled={compiled} "
                f"sdpa={sdpa_backend_name(dev)} optim=adam-{fused} steps={len(times)} "
                f"ms_median={1e3 * med:.3f} ms_mean={1e3 * statistics.mean(times):.3f} "
                f"img_per_s={a.batch / med:.1f} epoch_s_extrapolated={per_epoch:.2f} images={n} "
                f"first_step_s={first:.2f} params={nparams} loss={loss:.4f} {memory_stats(torch, dev)}")
            model = opt = cmodel = step = None
    return status


# --- the attention op alone, and the device's ceilings -------------------------------

def cuda_time_ms(torch, dev, fn, warmup, reps):
    """Median ms of fn(): CUDA events on a GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        if dev == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1))
        else:
            t0 = time.perf_counter()
            fn()
            ts.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ts)


def run_op(a):
    torch = torch_setup(a.device, "bf16")
    dev = a.device
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    backend_ctx, backend = None, sdpa_backend_name(dev)
    if dev == "cuda" and have_sdpa():
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            backend_ctx = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)   # noqa: E731
        except ImportError:
            backend = "sdpa-default"
    import contextlib
    ctx = backend_ctx or contextlib.nullcontext
    for T in (int(t) for t in a.T.split(",")):
        bnh = max(1, a.tokens // T)
        B, NH = max(1, bnh // a.heads), min(a.heads, bnh)
        for kind in ("std", "x"):
            try:
                g = torch.Generator(device=dev)
                g.manual_seed(T)
                q, k, v = (torch.randn(B, NH, T, a.hs, device=dev, dtype=dt, generator=g).requires_grad_(True)
                           for _ in range(3))
                do = torch.randn(B, NH, T, a.hs, device=dev, dtype=dt, generator=g)

                def fwd():
                    with ctx():
                        y = attention(q, k, v, causal=True)
                    return y - v if kind == "x" else y

                def fwd_nograd():
                    with torch.no_grad():
                        fwd()

                def fwd_bwd():
                    torch.autograd.grad(fwd(), (q, k, v), do)

                try:
                    ms_f = cuda_time_ms(torch, dev, fwd_nograd, a.warmup, a.reps)
                except RuntimeError as e:
                    if is_oom(e) or ctx is contextlib.nullcontext:
                        raise
                    # no flash kernel for these inputs: SDPA's own choice from here on
                    out(f"NOTE flash attention refused ({str(e).splitlines()[0][:120]}): SDPA's default backend")
                    ctx, backend = contextlib.nullcontext, "sdpa-default"
                    ms_f = cuda_time_ms(torch, dev, fwd_nograd, a.warmup, a.reps)
                ms_fb = cuda_time_ms(torch, dev, fwd_bwd, a.warmup, a.reps)
            except Exception as e:  # noqa: BLE001
                if not is_oom(e):
                    raise
                out(f"OOM kind=op attn={kind} T={T}")
                continue
            flops_f = 4 * B * NH * T * T * a.hs / 2          # causal: half of QK^T and PV
            out(f"RESULT kind=op impl=torch-sdpa-{backend} attn={kind} T={T} B={B} NH={NH} hs={a.hs} "
                f"dtype={a.dtype} fwd_ms={ms_f:.4f} fwd_tflops={flops_f / ms_f / 1e9:.1f} "
                f"fwdbwd_ms={ms_fb:.4f} fwdbwd_tflops={3.5 * flops_f / ms_fb / 1e9:.1f}")
            q = k = v = do = None
            free(torch, dev)
    # the ceilings METHOD.md asks for: a large matrix product, a device-to-device copy
    n = a.gemm
    for name, dtype in (("bf16", torch.bfloat16), ("tf32", torch.float32)):
        x = torch.randn(n, n, device=dev, dtype=dtype)
        y = torch.randn(n, n, device=dev, dtype=dtype)
        ms = cuda_time_ms(torch, dev, lambda: x @ y, 3, 10)
        out(f"RESULT kind=ceiling what=matmul-{name}-{n} ms={ms:.4f} tflops={2 * n ** 3 / ms / 1e9:.1f}")
        x = y = None
    src = torch.randn(a.copy_mib * 2 ** 18, device=dev)
    dst = torch.empty_like(src)
    ms = cuda_time_ms(torch, dev, lambda: dst.copy_(src), 3, 10)
    out(f"RESULT kind=ceiling what=copy-{a.copy_mib}MiB ms={ms:.4f} "
        f"gb_per_s={2 * src.numel() * 4 / ms / 1e6:.1f}")
    return 0


def run_info():
    try:
        import torch
    except ImportError as e:
        out(f"INFO torch=none ({e})")
        return 0
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "-"
    out(f"INFO torch={torch.__version__} cuda_available={int(cuda)} device=\"{name}\" "
        f"compile={int(hasattr(torch, 'compile'))} sdpa={int(have_sdpa())} "
        f"cuda_version={getattr(torch.version, 'cuda', None)}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    t = sub.add_parser("tokens")
    t.add_argument("dir")
    t.add_argument("vocab", type=int)
    t.add_argument("n", type=int)
    c = sub.add_parser("cifar")
    c.add_argument("dir")
    c.add_argument("train", type=int)
    c.add_argument("test", type=int)
    for name in ("gpt", "vit"):
        s = sub.add_parser(name)
        s.add_argument("--batch", type=int, required=True)
        s.add_argument("--attn", default="std,x")
        s.add_argument("--gamma", type=float, default=1.0)
        s.add_argument("--heads", type=int, default=12 if name == "gpt" else 8)
        s.add_argument("--device", default="cuda")
        s.add_argument("--compile", type=int, default=1 if name == "gpt" else 0)
        if name == "gpt":
            s.add_argument("--data", required=True)
            s.add_argument("--vocab", type=int, default=50257)
            s.add_argument("--layers", type=int, default=12)
            s.add_argument("--embd", type=int, default=768)
            s.add_argument("--seq", type=int, default=1024)
            s.add_argument("--precision", choices=("bf16", "tf32", "fp32"), default="bf16")
            s.add_argument("--warmup", type=int, default=5)
            s.add_argument("--steps", type=int, default=20)
        else:
            s.add_argument("--data-dir", required=True)
            s.add_argument("--dim", type=int, default=512)
            s.add_argument("--depth", type=int, default=6)
            s.add_argument("--mlp-dim", type=int, default=512)
            s.add_argument("--patch", type=int, default=4)
            s.add_argument("--precision", default="bf16,tf32", help="comma-separated: bf16, tf32, fp32")
            s.add_argument("--warmup", type=int, default=3)
            s.add_argument("--steps", type=int, default=48)
    o = sub.add_parser("op")
    o.add_argument("--T", default="256,1024,4096")
    o.add_argument("--tokens", type=int, default=1 << 22, help="B x NH x T of each size")
    o.add_argument("--heads", type=int, default=16)
    o.add_argument("--hs", type=int, default=64)
    o.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    o.add_argument("--warmup", type=int, default=5)
    o.add_argument("--reps", type=int, default=20)
    o.add_argument("--gemm", type=int, default=8192)
    o.add_argument("--copy-mib", type=int, default=2048)
    o.add_argument("--device", default="cuda")
    a = ap.parse_args()
    if a.cmd == "info":
        return run_info()
    if a.cmd == "tokens":
        write_tokens(a.dir, a.vocab, a.n)
        return 0
    if a.cmd == "cifar":
        write_cifar(a.dir, a.train, a.test)
        return 0
    if a.cmd == "gpt":
        return run_gpt(a)
    if a.cmd == "vit":
        return run_vit(a)
    return run_op(a)


if __name__ == "__main__":
    sys.exit(main())
