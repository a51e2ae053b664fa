"""``mlsteward crds``: write crds/ from the API models, or check that it is current."""

from __future__ import annotations

import argparse
import pathlib
import sys

from mlsteward.api import crds

MAX_CRD_BYTES = 256 * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlsteward crds", description=__doc__)
    parser.add_argument("--dir", type=pathlib.Path, default=pathlib.Path("crds"), help="output folder")
    parser.add_argument("--check", action="store_true", help="fail when the folder is stale")
    args = parser.parse_args(argv)
    rendered = crds.render_crds()
    stale: list[str] = []
    for name, text in rendered.items():
        if len(text.encode()) > MAX_CRD_BYTES // 2:
            print(f"{name} is {len(text)} bytes: keep CRDs well under 256 KiB", file=sys.stderr)
            return 1
        path = args.dir / name
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            args.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    extra = (
        sorted(p.name for p in args.dir.glob("*.yaml") if p.name not in rendered) if args.dir.is_dir() else []
    )
    if args.check:
        if stale or extra:
            print(f"crds/ is stale ({', '.join(stale + extra)}): run `make crds`", file=sys.stderr)
            return 1
        print(f"crds/ is current ({len(rendered)} CRDs)")
        return 0
    for name in extra:
        (args.dir / name).unlink()
    print(f"wrote {len(stale)} of {len(rendered)} CRDs to {args.dir}/")
    return 0
