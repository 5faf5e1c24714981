#!/usr/bin/env python3
"""Finds dependencies a crate declares and never names.

For every crate of the workspace, each entry of [dependencies],
[dev-dependencies] and [build-dependencies] must be named in the crate's
Rust files (`name::`, `use name`, `extern crate name`, or a derive or
attribute path) — with `-` read as `_`, and a renamed dependency by the
name the crate uses. An unused dependency costs build time on every clean
build (RocksDB's alone is twenty minutes here) and misleads a reader about
what a crate is made of. cargo-machete does the same; this needs no
install.

Usage: scripts/unused_deps.py   (exit status 1 and the list if any)
"""
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("dependencies", "dev-dependencies", "build-dependencies")
# Named only in Cargo.toml on purpose, each with its reason.
EXEMPT = {
    # Used only through the features it enables for another crate.
}


def rust_text(crate_dir):
    chunks = []
    for dirpath, dirs, names in os.walk(crate_dir):
        dirs[:] = [d for d in dirs if d not in ("target", ".git")]
        for n in names:
            if n.endswith(".rs"):
                chunks.append(open(os.path.join(dirpath, n), encoding="utf-8").read())
    return "\n".join(chunks)


def main():
    workspace = tomllib.load(open(os.path.join(ROOT, "Cargo.toml"), "rb"))
    unused = []
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.load(open(os.path.join(ROOT, member, "Cargo.toml"), "rb"))
        text = rust_text(os.path.join(ROOT, member))
        for section in SECTIONS:
            for name in manifest.get(section, {}):
                ident = name.replace("-", "_")
                if (member, name) in EXEMPT:
                    continue
                if not re.search(r"(?<![A-Za-z0-9_])" + re.escape(ident) + r"(::|\s*;|\s*\{|!)", text):
                    unused.append(f"{member}: [{section}] {name}")
    for line in unused:
        print(f"unused dependency: {line}")
    sys.exit(1 if unused else 0)


if __name__ == "__main__":
    main()
