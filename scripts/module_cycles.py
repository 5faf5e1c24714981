#!/usr/bin/env python3
"""Finds import cycles between the top-level modules of each crate.

A module `a` depends on `b` when a file of `a` (a.rs, or a/...) names
`crate::b` (in a `use` or a path) or, from a top-level file, `super::b`.
Edges inside one top-level module are not counted: a submodule naming its
parent is how Rust modules are written. A cycle between top-level modules
means neither can be read, tested or changed without the other
(DESIGN.md section 2: dependencies point one way), so CI fails on one.

Usage: scripts/module_cycles.py [CRATE_DIR ...]   (default: every crate)
Exit status 1 and the cycles printed if there are any, except those
listed in scripts/module_cycles.allow (`crate: module, module, ...`, each
with the reason it is still there): a known cycle is printed and passes;
one that grows, or a new one, fails.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several modules at once.
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def crates():
    for name in sorted(os.listdir(ROOT)):
        if os.path.isfile(os.path.join(ROOT, name, "Cargo.toml")) and os.path.isdir(os.path.join(ROOT, name, "src")):
            yield name


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def graph(crate):
    src = os.path.join(ROOT, crate, "src")
    modules = set()
    for entry in os.listdir(src):
        path = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            modules.add(entry[:-3])
        elif os.path.isdir(path):
            modules.add(entry)
    edges = {m: set() for m in modules}
    for module in modules:
        files = []
        if os.path.isfile(os.path.join(src, module + ".rs")):
            files.append(os.path.join(src, module + ".rs"))
        for dirpath, _, names in os.walk(os.path.join(src, module)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith(".rs")]
        for f in files:
            text = strip_comments(open(f, encoding="utf-8").read())
            # Test modules may reach anywhere; they are not the design.
            text = text.split("#[cfg(test)]")[0]
            named = set(PATH.findall(text))
            for group in GROUP.findall(text):
                named |= {g.strip().split("::")[0] for g in group.split(",") if g.strip()}
            for other in named:
                if other in modules and other != module:
                    edges[module].add(other)
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def allowed():
    path = os.path.join(ROOT, "scripts", "module_cycles.allow")
    known = set()
    for line in open(path, encoding="utf-8") if os.path.exists(path) else []:
        line = line.split("#")[0].strip()
        if line:
            crate, modules = line.split(":", 1)
            known.add((crate.strip(), tuple(sorted(m.strip() for m in modules.split(",")))))
    return known


def main():
    known = allowed()
    seen = set()
    found = False
    for crate in sys.argv[1:] or list(crates()):
        crate = crate.rstrip("/")
        edges = graph(crate)
        for component in cycles(edges):
            inside = set(component)
            links = [f"{a} -> {b}" for a in component for b in sorted(edges[a]) if b in inside]
            if (crate, tuple(component)) in known:
                seen.add((crate, tuple(component)))
                print(f"{crate}: known cycle (module_cycles.allow): {', '.join(component)}")
                continue
            found = True
            print(f"{crate}: modules in a cycle: {', '.join(component)} ({'; '.join(links)})")
    if not sys.argv[1:]:
        for crate, component in sorted(known - seen):
            found = True
            print(f"{crate}: module_cycles.allow lists a cycle that is gone: {', '.join(component)}; remove the line")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
