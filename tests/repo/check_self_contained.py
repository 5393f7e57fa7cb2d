#!/usr/bin/env python3
"""Fails when a tracked file names a path outside the repository.

    python3 tests/repo/check_self_contained.py [--self-test]

A lone clone must build, test and read: nothing may reach for a folder beside it. Every tracked text
file is searched for relative paths (`../…`) that climb above the repository's root from where they
are resolved (the file's own folder; for Rust also the crate's folder, which `CARGO_MANIFEST_DIR`
names), and for names of documents that live only beside the clone.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import PurePosixPath

ROOT = PurePosixPath(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                                    check=True).stdout.strip())

CLIMB = re.compile(r"(?:\.\./)+")
# Paths that leave the clone without `../`: Python's pathlib climbing to the folder beside it, and the
# documents of the workspace the project was started in.
OUTSIDE = [
    re.compile(r"""\.parent\s*/\s*["']shared["']"""),
    re.compile(r"\bvapi-samples\b"),
    re.compile(r"\b(?:SPEC|VAPI|SEED|STYLE|TOOLCHAIN)\.md\b"),
]
SKIP_SUFFIXES = {".png", ".jpg", ".gz", ".zip", ".ico", ".woff", ".woff2", ".lock"}


def crate_dir(path: PurePosixPath, tracked: set[str]) -> PurePosixPath | None:
    for parent in path.parents:
        if str(parent / "Cargo.toml") in tracked or (parent == PurePosixPath(".") and "Cargo.toml" in tracked):
            return parent
    return None


def depth(folder: PurePosixPath) -> int:
    return 0 if str(folder) in ("", ".") else len(folder.parts)


def problems(path: str, text: str, tracked: set[str]) -> list[str]:
    p = PurePosixPath(path)
    bases = [p.parent]
    if p.suffix == ".rs" and (c := crate_dir(p, tracked)) is not None:
        bases.append(c)
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in CLIMB.finditer(line):
            climbs = m.group(0).count("../")
            if any(climbs > depth(b) for b in bases):
                found.append(f"{path}:{n}: '{line.strip()[:120]}' climbs above the repository")
        for pattern in OUTSIDE:
            if pattern.search(line):
                found.append(f"{path}:{n}: '{line.strip()[:120]}' names a file outside the repository")
    return found


def check(files: dict[str, str]) -> list[str]:
    tracked = set(files)
    out = []
    for path, text in sorted(files.items()):
        out.extend(problems(path, text, tracked))
    return out


def tracked_files() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = {}
    for name in names.decode().split("\0"):
        if not name or PurePosixPath(name).suffix in SKIP_SUFFIXES or name == "tests/repo/check_self_contained.py":
            continue
        try:
            raw = open(ROOT / name, "rb").read()
        except FileNotFoundError:  # deleted in the work tree, not yet in the index
            continue
        if b"\0" not in raw:
            files[name] = raw.decode("utf-8", "replace")
    return files


def self_test() -> None:
    tracked = {"Cargo.toml": "", "shared/Cargo.toml": ""}
    cases = {
        # (path, line): leaves the clone?
        ("shared/tests/a.rs", 'concat!(env!("CARGO_MANIFEST_DIR"), "/../../sibling/x.json")'): True,
        ("shared/tests/a.rs", 'concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/vapi/x.json")'): False,
        ("README.md", "--data @../sibling/x.json"): True,
        ("docs/a.md", "the payloads in vapi-samples/"): True,
        ("README.md", "--data @fixtures/vapi/x.json"): False,
        ("docs/a.md", "see [the fixtures](../fixtures/vapi/README.md)"): False,
        ("docs/a.md", "see ../../elsewhere/notes.md"): True,
        ("tools/bench/a.py", 'SAMPLE = ROOT.parent / "shared" / "x.json"'): True,
        ("scripts/a.sh", "cat SPEC.md"): True,
    }
    for (path, line), leaves in cases.items():
        got = bool(check({**tracked, path: line}))
        assert got == leaves, f"{path}: {line!r}: flagged={got}, expected {leaves}"
    print(f"self-test: {len(cases)} cases as expected")


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    files = tracked_files()
    found = check(files)
    for f in found:
        print(f, file=sys.stderr)
    if found:
        print(f"{len(found)} reference(s) outside the repository: a lone clone would fail", file=sys.stderr)
        return 1
    print(f"{len(files)} tracked files read; nothing names a path outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
