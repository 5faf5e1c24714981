#!/usr/bin/env python3
"""Docs that name source files must name files that exist.

Module essays and READMEs point readers at code: `storage/snapshot.rs`,
`shard/apply.rs::apply_entry`, `client/src/txn.rs`. rustdoc checks
intra-doc links (`[Foo]`), but not these, and they drift when code moves
(the review behind issue 10 found an essay citing a function that no
longer existed). This script finds every backticked `PATH.rs` or
`PATH.rs::NAME` in the Rust sources and the top-level Markdown files and
fails if no file of the repository ends with PATH, or if NAME (its last
`::` segment) appears in none of those files; and every backticked
`CRATE::...::NAME` naming a workspace crate, failing if NAME appears in
none of that crate's sources.

Usage: python3 scripts/doc_references.py   (from the repository root)
Exit status 1 and one line per broken reference if any.
"""

import os
import re
import sys

REFERENCE = re.compile(r"`([A-Za-z0-9_./-]+\.rs)(?:::([A-Za-z0-9_:]+))?`")
# `crate::module::Name` (a workspace crate's item, without a file).
ITEM = re.compile(r"`([a-z_]+)((?:::[A-Za-z0-9_]+)+)(?:\(\))?`")
SKIP_DIRS = {"target", ".git", "node_modules"}


def repository_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)


def main():
    root = "."
    files = sorted(repository_files(root))
    rust_files = [f for f in files if f.endswith(".rs")]
    documents = rust_files + [f for f in files if f.endswith(".md") and os.sep not in f]
    texts = {}

    def text(path):
        if path not in texts:
            with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                texts[path] = f.read()
        return texts[path]

    crates = {}
    for f in files:
        if os.path.basename(f) == "Cargo.toml" and os.path.dirname(f):
            crate_dir = os.path.dirname(f)
            # Generated code's names come from the crate's .proto files.
            crates[os.path.basename(crate_dir)] = [
                r for r in files if r.startswith(crate_dir + "/") and r.endswith((".rs", ".proto"))
            ]

    problems = []
    for doc in documents:
        for lineno, line in enumerate(text(doc).splitlines(), 1):
            for m in REFERENCE.finditer(line):
                path, name = m.group(1), m.group(2)
                suffix = path.lstrip("./")
                targets = [f for f in rust_files if f == suffix or f.endswith("/" + suffix)]
                if not targets:
                    problems.append(f"{doc}:{lineno}: `{m.group(0).strip('`')}` names no file of the repository")
                    continue
                if name:
                    symbol = name.split("::")[-1]
                    pattern = re.compile(r"\b" + re.escape(symbol) + r"\b")
                    if not any(pattern.search(text(t)) for t in targets):
                        problems.append(f"{doc}:{lineno}: `{m.group(0).strip('`')}`: no `{symbol}` in {', '.join(targets)}")
            for m in ITEM.finditer(line):
                crate, rest = m.group(1), m.group(2)
                if crate not in crates:
                    continue
                symbol = rest.split("::")[-1]
                pattern = re.compile(r"\b" + re.escape(symbol) + r"\b")
                if not any(pattern.search(text(t)) for t in crates[crate]):
                    problems.append(f"{doc}:{lineno}: `{crate}{rest}`: no `{symbol}` in crate {crate}")
    for p in problems:
        print(p)
    if problems:
        print(f"doc_references: {len(problems)} reference(s) to code that is not there")
        return 1
    print("doc_references: every file and name the docs point at exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
