#!/usr/bin/env python3
"""translate.py IN.cu OUT.cpp - the two CUDA constructs C++ cannot compile, rewritten
for the CPU emulator (tests/cuda_emu/cuda_runtime.h); everything else is kept as is.

  k[<template args>]<<<grid, block[, smem[, stream]]>>>(args)
      -> emu_launch(EmuLaunch("k", __FILE__, __LINE__, grid, block...), k, args)
  __shared__ [__align__(A)] T a[N][M], b;
      -> T (&a)[N][M] = *static_cast<T (*)[N][M]>(emu_shared(sizeof(T[N][M]), alignof(T)));
         T &b = *static_cast<T *>(emu_shared(sizeof(T), alignof(T)));

Line numbers are kept (a `#line 1` names the .cu file and every rewrite keeps
its newlines), so compiler messages and __LINE__ point into the .cu source.
"""
import os
import re
import sys


def fail(path, text, pos, why):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"translate.py: {path}:{line}: {why}")


def closing_paren(text, open_pos):
    """Index of the ')' matching the '(' at open_pos."""
    depth = 0
    for i in range(open_pos, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def rewrite_launches(path, text):
    out, pos = [], 0
    # the kernel, with its template arguments if any: k<<<...>>> or k<HS><<<...>>>
    for m in re.finditer(r"\b([A-Za-z_]\w*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(", text, re.S):
        if m.start() < pos:
            continue
        close = closing_paren(text, m.end() - 1)
        if close < 0:
            fail(path, text, m.start(), "launch without a closing parenthesis")
        kernel, config = m.group(1), " ".join(m.group(2).split())
        args = " ".join(text[m.end():close].split())
        span = text[m.start():close + 1]
        call = f'emu_launch(EmuLaunch("{kernel}", __FILE__, __LINE__, {config}), {kernel}'
        call += f", {args})" if args else ")"
        out.append(text[pos:m.start()] + call + "\n" * span.count("\n"))
        pos = close + 1
    out.append(text[pos:])
    return "".join(out)


DECLARATOR = re.compile(r"^\s*([A-Za-z_]\w*)\s*((?:\[[^\]]+\])*)\s*$")


def shared_reference(type_, name, dims, align):
    align = f"alignof({type_})" if align is None else f"std::max<size_t>({align}, alignof({type_}))"
    if not dims:
        return (f"{type_} &{name} = *static_cast<{type_} *>("
                f"emu_shared(sizeof({type_}), {align}));")
    return (f"{type_} (&{name}){dims} = *static_cast<{type_} (*){dims}>("
            f"emu_shared(sizeof({type_}{dims}), {align}));")


def rewrite_shared(path, text):
    def one(m):
        body = m.group(1)
        if "=" in body or "extern" in text[max(0, m.start() - 8):m.start()]:
            fail(path, text, m.start(), "only plain static __shared__ declarations are emulated")
        first, *rest = body.split(",")
        # the type is everything before the first declarator's name
        fm = re.match(r"^\s*(.*?)\s*([A-Za-z_]\w*)\s*((?:\[[^\]]+\])*)\s*$", first, re.S)
        if not fm or not fm.group(1):
            fail(path, text, m.start(), f"cannot read the declaration '__shared__ {body}'")
        type_ = " ".join(fm.group(1).split())
        # __align__(N) (on a GPU: the arrays' alignment) becomes emu_shared's alignment
        am = re.search(r"__align__\s*\(\s*(\d+)\s*\)", type_)
        align = am.group(1) if am else None
        if am:
            type_ = " ".join((type_[:am.start()] + type_[am.end():]).split())
        decls = [(fm.group(2), fm.group(3))]
        for r in rest:
            dm = DECLARATOR.match(r)
            if not dm:
                fail(path, text, m.start(), f"cannot read the declarator '{r.strip()}'")
            decls.append((dm.group(1), dm.group(2)))
        refs = " ".join(shared_reference(type_, n, "".join(d.split()), align) for n, d in decls)
        return refs + "\n" * m.group(0).count("\n")

    return re.sub(r"\b__shared__\s+([^;{}]*);", one, text)


def translate(src):
    with open(src) as f:
        text = f.read()
    text = rewrite_shared(src, rewrite_launches(src, text))

    # a .cu file included by another (dev/cuda's benches include the backend's
    # kernels) is translated in place: the compiler would see it untranslated
    def inline(m):
        inc = os.path.join(os.path.dirname(src), m.group(1))
        line = text.count("\n", 0, m.start()) + 2
        return f'#line 1 "{inc}"\n' + translate(inc) + f'\n#line {line} "{src}"'

    return re.sub(r'^#include "([^"]+\.cu)"[ \t]*$', inline, text, flags=re.M)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: translate.py IN.cu OUT.cpp")
    src, dst = sys.argv[1], sys.argv[2]
    text = translate(src)
    with open(dst, "w") as f:
        f.write(f'#line 1 "{src}"\n' + text)


if __name__ == "__main__":
    main()
