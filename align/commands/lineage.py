"""`align lineage PATH`: where a saved model came from, read back from its model card, parent by parent
(`foundation.cards`)."""

from __future__ import annotations

from align.cli import ArgumentParser
from foundation.cards import base_model_id, lineage_chain
from foundation.errors import DataError


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align lineage", description=__doc__.split("\n\n")[0])
    parser.add_argument("path",
                        help="A folder saved by an align command (a policy adapter or a reward model).")
    args = parser.parse_args(argv)
    chain = lineage_chain(args.path)
    if not chain:
        raise DataError(f"{args.path}: no such folder.")
    for depth, (folder, lineage) in enumerate(chain):
        indent = "  " * depth
        if lineage is None:
            print(f"{indent}{folder}: no align-toolkit model card (README.md) there")
            continue
        base = base_model_id(lineage.base_model)
        print(f"{indent}{folder}: {lineage.method} of {lineage.base_model}"
              + (f" ({base})" if base and base != lineage.base_model else ""))
        for key, value in (("data", lineage.data), ("settings", lineage.settings), ("loop", lineage.loop)):
            if value:
                print(f"{indent}  {key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        for r in lineage.results:
            interval = f" [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}]" if r.get("interval") else ""
            print(f"{indent}  {r['name']}: {r['value']:.3f}{interval}"
                  + (f" (n {r['n']})" if r.get("n") else ""))
        if lineage.parent:
            print(f"{indent}  trained from: {lineage.parent}")
    return 0
