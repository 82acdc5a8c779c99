#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz harnesses (tests/fuzz/corpus/).

One small valid input per format, so the fuzzers start inside each parser
rather than at its first check. Run from the repository root:
    python3 tests/fuzz/make_seeds.py
"""
import gzip
import io
import os
import struct
import tarfile
import zlib

ROOT = "tests/fuzz/corpus"


def put(harness, name, data):
    os.makedirs(f"{ROOT}/{harness}", exist_ok=True)
    with open(f"{ROOT}/{harness}/{name}", "wb") as f:
        f.write(data)


def shard(magic, version, tokens, fmt):
    head = struct.pack("<256i", magic, version, len(tokens), *([0] * 253))
    return head + struct.pack(f"<{len(tokens)}{fmt}", *tokens)


# token files
put("tokens", "llmc_gpt2", shard(20240520, 1, list(range(100, 120)), "H"))
put("tokens", "llmc_llama3", shard(20240801, 7, list(range(1000, 1020)), "I"))
put("tokens", "nanogpt_raw", struct.pack("<20H", *range(50, 70)))

# a checkpoint of fuzz_ckpt's tiny GPT: 528 parameters, 24 state bytes
n_params, state_bytes = 528, 24
header = (b"ATXCKPT\0" + struct.pack("<I", 1) + b"gpt\0\0\0\0\0"
          + struct.pack("<16i", 9, 64, 4, 1, 1, 4, 1, *([0] * 9)) + b"\0" * 4
          + struct.pack("<qQQ", 7, n_params, state_bytes))
assert len(header) == 112
body = header + struct.pack(f"<{3 * n_params}f", *([0.5] * 3 * n_params)) + b"\1" * state_bytes
put("ckpt", "valid", body + struct.pack("<I", zlib.crc32(body)))

# config files (first byte odd) and command lines (first byte even, NUL-separated)
put("config", "file", b"\x01layers=3\nlr = 0.5\ndata=tokens/*.bin\n# a comment\nattn=x\n")
put("config", "argv", b"\x00--layers=4\0--lr\0" b"0.25\0--attn=std\0--data=x")

# images: first byte 0 CIFAR-10 file, 1 CIFAR-100 file, 2 IDX pair, 3 CIFAR-10 archive
pixels = bytes(range(256)) * 12
put("images", "cifar10", b"\x00" + b"\x03" + pixels)
put("images", "cifar100", b"\x01" + b"\x02\x31" + pixels)
labels = struct.pack(">II", 0x801, 8) + bytes(range(8))
images = struct.pack(">IIII", 0x803, 8, 2, 2) + bytes(range(32))
put("images", "idx", b"\x02" + labels + images)
tar_bytes = io.BytesIO()
with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        record = b"\x01" + pixels
        info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
        info.size = len(record)
        tar.addfile(info, io.BytesIO(record))
put("images", "cifar10_targz", b"\x03" + gzip.compress(tar_bytes.getvalue(), mtime=0))

# tokenizer: 0 encoder.json, 1 vocab.bpe, 2 llm.c tokenizer file, 3 text to round-trip
put("tokenizer", "encoder", b"\x00" + b'{"a": 0, "b": 1, "\\u0120": 2, "ab": 3, "<|endoftext|>": 4}')
put("tokenizer", "bpe", b"\x01#version: 0.2\na b\nab a\n")
llmc = struct.pack("<256i", 20240328, 2, 3, 2, *([0] * 252))
llmc += b"\x01a" + b"\x02bc" + b"\x00"
put("tokenizer", "llmc", b"\x02" + llmc)
put("tokenizer", "text", b"\x03Hello world, it's 2024!\n\n  \xff\xfe caf\xc3\xa9")

# weights (--init-from) for fuzz_weights' tiny GPT (V 9, T 4, L 1, C 4, bias):
# an llm.c checkpoint (version 3) and a safetensors file under nanoGPT's names
C, T, V, Vp = 4, 4, 9, 16
sizes = [Vp * C, T * C, C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C, C, C]
n = sum(sizes)
put("weights", "llmc_v3", struct.pack("<256i", 20240326, 3, T, V, 1, 1, C, Vp, *([0] * 248))
    + struct.pack(f"<{n}f", *([0.25] * n)))
names = [("transformer.wte.weight", [Vp, C]), ("transformer.wpe.weight", [T, C])]
for k, shape in (("ln_1.weight", [C]), ("ln_1.bias", [C]), ("attn.c_attn.weight", [3 * C, C]),
                 ("attn.c_attn.bias", [3 * C]), ("attn.c_proj.weight", [C, C]), ("attn.c_proj.bias", [C]),
                 ("ln_2.weight", [C]), ("ln_2.bias", [C]), ("mlp.c_fc.weight", [4 * C, C]),
                 ("mlp.c_fc.bias", [4 * C]), ("mlp.c_proj.weight", [C, 4 * C]), ("mlp.c_proj.bias", [C])):
    names.append((f"transformer.h.0.{k}", shape))
names += [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
entries, off = [], 0
for name, shape in names:
    count = 1
    for d in shape:
        count *= d
    dtype = "BF16" if name.endswith("wpe.weight") else "F32"
    size = count * (2 if dtype == "BF16" else 4)
    entries.append('"%s":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}'
                   % (name, dtype, str(shape).replace(" ", ""), off, off + size))
    off += size
head = ('{"__metadata__":{"n_head":"1","vocab_size":"9","attn":"x","gamma":"0.5"},' + ",".join(entries)
        + "}").encode()
head += b" " * (-len(head) % 8)
put("weights", "safetensors", struct.pack("<Q", len(head)) + head + b"\x3e" * off)
