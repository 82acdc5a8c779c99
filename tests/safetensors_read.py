"""The safetensors reading that tests/safetensors_check.py (GPT) and
tests/vit_safetensors_check.py (ViT) share: json + struct only, never the
project's parser.

load(path, expected_shapes, fail) parses the file, refuses a name given twice,
asks expected_shapes(metadata) for {name: shape} and checks that the file holds
exactly those tensors, as F32 with those shapes, at offsets that tile the data
section; it returns (metadata, {name: float64 tensor}). fail(msg) must not return.
"""
import json
import struct

import torch


def load(path, expected_shapes, fail):
    data = open(path, "rb").read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen % 8 or 8 + hlen > len(data):
        fail(f"header length {hlen} of a {len(data)}-byte file")

    def unique_keys(pairs):   # a name given twice is an error, not the last one winning
        seen = {}
        for k, v in pairs:
            if k in seen:
                fail(f"{k} appears more than once in the header")
            seen[k] = v
        return seen
    header = json.loads(data[8:8 + hlen].decode("utf-8"), object_pairs_hook=unique_keys)
    meta = header.pop("__metadata__", {})
    body = data[8 + hlen:]
    want = expected_shapes(meta)
    if set(header) != set(want):
        fail(f"tensor names differ: extra {sorted(set(header) - set(want))}, "
             f"missing {sorted(set(want) - set(header))}")
    spans, tensors = [], {}
    for name, info in header.items():
        if info["dtype"] != "F32" or info["shape"] != want[name]:
            fail(f"{name}: {info['dtype']} {info['shape']}, expected F32 {want[name]}")
        b, e = info["data_offsets"]
        n = 1
        for d in info["shape"]:
            n *= d
        if e - b != 4 * n:
            fail(f"{name}: offsets {b}..{e} for {n} floats")
        spans.append((b, e))
        tensors[name] = torch.frombuffer(bytearray(body[b:e]), dtype=torch.float32).double().view(info["shape"])
    spans.sort()
    if spans and (spans[0][0] != 0 or spans[-1][1] != len(body)
                  or any(a[1] != b[0] for a, b in zip(spans, spans[1:]))):
        fail("data offsets do not tile the data section")
    return meta, tensors
