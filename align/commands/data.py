"""`align data convert INPUT --format hh|kway|records|auto --out OUT [--skip-invalid]`."""

from __future__ import annotations

from align.cli import ArgumentParser
from foundation.readers import FORMATS, read_preferences
from foundation.records import to_hf_dataset, write_jsonl


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align data", description="Preference data tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    convert = sub.add_parser("convert", help="Read a preference file and write preference records.")
    convert.add_argument("input",
                         help="File (.jsonl/.json/.csv/.parquet, .gz too) or a saved dataset folder.")
    convert.add_argument("--format", choices=FORMATS, default="auto", help="Input format (default: auto).")
    convert.add_argument("--out", required=True,
                         help="Output: a .jsonl file, or a folder for a Hugging Face dataset saved to disk.")
    convert.add_argument("--skip-invalid", "--skip_invalid", action="store_true",
                         help="Skip malformed rows and count them instead of stopping at the first.")
    args = parser.parse_args(argv)

    data = read_preferences(args.input, args.format, skip_invalid=args.skip_invalid)
    if args.out.endswith((".jsonl", ".jsonl.gz")) and not args.out.endswith(".gz"):
        write_jsonl(data.records, args.out)
    else:
        to_hf_dataset(data.records).save_to_disk(args.out)
    print(data.summary())
    print(f"wrote {len(data.records)} records to {args.out}")
    return 0
