#!/usr/bin/env python3
"""Import cycles between the modules of a crate's src/ (default: the supervisor's).

Every file is a module (src/host/service.rs is host::service, src/pipeline/mod.rs is
pipeline). An edge A -> B is a path A names in code (comments and doc links excluded):
`crate::b::...` (also inside grouped `use crate::{...}`), `super::...`, or `use child::...` for
a child module A declares. Paths into one's own ancestors (a submodule using its parent's
items) are not counted as edges. Prints the cycles between top-level modules and between
sibling files, and exits 1 if there is any.

    python3 tools/module-cycles.py [-v] [src-dir]
"""
import os
import re
import sys

args = [a for a in sys.argv[1:] if not a.startswith("-")]
src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
        if rel[-1] == "mod":
            rel = rel[:-1]
        if rel in (["lib"], ["main"]):
            rel = []
        mods[tuple(rel)] = os.path.join(root, f)


def code_of(path):
    """The file's code without comments and without its inline `#[cfg(test)] mod ... { }`
    (test-only imports are not dependencies of the module)."""
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.split("//", 1)[0]
        out.append(line)
    code = "".join(out)
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
    return code[: m.start()] if m else code


# Modules declared `#[cfg(test)] mod name;` are test code: not part of the graph.
for mod, path in list(mods.items()):
    for child in re.findall(r"#\[cfg\(test\)\]\s*mod\s+(\w+)\s*;", code_of(path)):
        mods.pop(mod + (child,), None)


def resolve(parts):
    """The longest known module that prefixes `parts`."""
    for n in range(len(parts), -1, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return ()


def expand(prefix, body):
    """`a::{b, c::{d}}` -> [a::b, a::c::d] (roughly)."""
    out, depth, cur = [], 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            cur = cur.strip()
            m = re.match(r"([\w:]*?)::\{(.*)\}$", cur, re.S)
            if m:
                out += expand(prefix + m.group(1).split("::"), m.group(2))
            elif cur:
                out.append(prefix + cur.split(" as ")[0].strip().split("::"))
            cur = ""
        else:
            cur += ch
    return out


edges = {m: set() for m in mods}
for mod, path in mods.items():
    code = code_of(path)
    children = {m[-1] for m in mods if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
    targets = []
    for m in re.finditer(r"crate::\{([^;]*)\}", code, re.S):
        targets += expand([], m.group(1))
    targets += [p.split("::") for p in re.findall(r"\bcrate::((?:\w+::)*\w+)", code)]
    for p in re.findall(r"\bsuper::((?:\w+::)*\w+)", code):
        targets.append(list(mod[:-1]) + p.split("::"))
    for p in re.findall(r"\buse\s+((?:\w+::)+\w+)", code):
        first = p.split("::")[0]
        if first in children:
            targets.append(list(mod) + p.split("::"))
    for t in targets:
        dst = resolve([x for x in t if x])
        if dst != mod and dst != mod[: len(dst)]:  # not self, not an ancestor
            edges[mod].add(dst)


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


name = lambda m: "::".join(m) or "crate"
top = {}
for a, bs in edges.items():
    for b in bs:
        if a and b and a[0] != b[0]:
            top.setdefault((a[0],), set()).add((b[0],))
siblings = {}
for a, bs in edges.items():
    for b in bs:
        if len(a) == len(b) and len(a) > 1 and a[:-1] == b[:-1]:
            siblings.setdefault(a, set()).add(b)
found = cycles(top) + cycles(siblings)
for c in found:
    print("cycle:", " <-> ".join(name(m) for m in c))
    for a in c:
        graph = top if len(a) == 1 and a not in siblings else siblings
        print("   ", name(a), "->", ", ".join(name(b) for b in sorted(graph.get(a, ())) if b in c))
print(f"{len(mods)} modules, {len(found)} cycle(s)")
if "-v" in sys.argv:
    for (a,), bs in sorted(top.items()):
        print(a, "->", ", ".join(sorted(b for (b,) in bs)))
sys.exit(1 if found else 0)
