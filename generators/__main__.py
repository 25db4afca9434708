"""`python -m generators [--check] [--root DIR]`.

Exit codes: 0 everything written / up to date; 1 `--check` found stale files (each named on stderr);
2 a generator input is unusable (the message names the file and what to fix).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optical_inspection.config.key_schema import KeySchemaError
from optical_inspection.skill_bank import bank_root

from . import GeneratorError
from .outputs import apply, find_drift, render_all

REPO_ROOT = bank_root()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every stale file")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="folder holding skills/, schemas/, references/ (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        files = render_all(root)
    except (GeneratorError, KeySchemaError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    drift = find_drift(root, files)
    if args.check:
        for item in drift:
            print(f"stale: {item.path} ({item.reason}); run `python -m generators` (make generate)", file=sys.stderr)
        print(f"{len(files) - len(drift)} of {len(files)} generated files up to date" if drift
              else f"all {len(files)} generated files up to date")
        return 1 if drift else 0
    apply(root, files, drift)
    for item in drift:
        verb = "removed" if item.reason == "unexpected" else "wrote"
        print(f"{verb} {item.path}")
    print(f"{len(files)} generated files, {len(drift)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
