"""Readers that turn preference data files into `PreferenceRecord`s.

Formats (`format=`):
    hh       Anthropic HH-RLHF transcripts: `{"chosen": str, "rejected": str}` per JSON line.
    kway     K-way comparisons: FineGrainedRLHF's `question`/`passages`/`prediction 1..K`/`preference`
             (one judgement per pair (i, j), i < j, in lexicographic order: 1 first better, 2 second,
             0 tie), or the generic `{"prompt", "responses": [...], "preference": [...]}`.
    records  prompt/chosen/rejected in plain text or conversational form (our own export, TRL's
             datasets), from JSONL, JSON, CSV, parquet or a Hugging Face dataset saved to disk.
    auto     decided from the first row.
Files ending in `.gz` are decompressed transparently.

A malformed row stops the read with a `DataError` naming the file, the line and the field; with
`skip_invalid=True` the row is skipped and its reason counted in `PreferenceData.skipped`.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from foundation.errors import DataError
from foundation.records import Message, PreferenceRecord, as_chat, iter_json_lines, messages_from

__all__ = ["readable", "FORMATS", "PreferenceData", "read_preferences", "parse_hh_transcript"]

FORMATS = ("auto", "hh", "kway", "records")


@dataclass
class PreferenceData:
    """The records read from one file and what was skipped, by reason."""

    path: str
    format: str
    records: list[PreferenceRecord]
    skipped: Counter = field(default_factory=Counter)

    @property
    def ties(self) -> int:
        return sum(r.tie for r in self.records)

    def summary(self) -> str:
        lines = [f"{self.path} ({self.format}): {len(self.records)} records, {self.ties} ties, "
                 f"{len(self.records) - self.ties} preference pairs, "
                 f"{sum(self.skipped.values())} rows skipped"]
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        return "\n".join(lines)


def read_preferences(path: str | Path, format: str = "auto", *, skip_invalid: bool = False) -> PreferenceData:
    """Read a preference file (or a saved Hugging Face dataset folder) into records."""
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}.")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.")
    rows = readable(path, _rows(path))
    first = next(rows, None)
    if first is None:
        return PreferenceData(str(path), format if format != "auto" else "records", [])
    if format == "auto":
        format = _detect(first[1])
    parse = {"hh": _parse_hh_row, "kway": _parse_kway_row, "records": _parse_record_row}[format]
    data = PreferenceData(str(path), format, [])
    for where, row in itertools.chain([first], rows):
        try:
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}.")
            data.records.extend(parse(row, where))
        except DataError as e:
            if not skip_invalid:
                raise DataError(f"{e} Fix the row, or pass --skip-invalid to skip malformed rows.") from None
            data.skipped[_reason(str(e), where)] += 1
    return data


def _reason(message: str, where: str) -> str:
    """The reason of a skipped row without its location, so that equal reasons are counted together."""
    reason = message[len(where):].lstrip(":, ") if message.startswith(where) else message
    return re.sub(r"\[\d+\]", "[i]", reason)


# ---------------------------------------------------------------------------------------------- rows

def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def readable(path: Path, rows: Iterator) -> Iterator:
    """`rows` read from `path`, with an unreadable file turned into one `DataError` that names it: a
    binary file (not UTF-8 text), a damaged or truncated `.gz`, a file that cannot be read."""
    import zlib

    try:
        yield from rows
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); is it a binary file? Give a "
                        f"JSONL, JSON, CSV or parquet file (.gz too) or a saved dataset folder.") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: the gzip data is damaged or cut short ({e or 'unexpected end of file'}); "
                        f"download or compress the file again.") from None
    except (PermissionError, IsADirectoryError) as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}).") from None


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield `(where, row)` pairs; `where` is "FILE, line N" (or "FILE, row N" for tables)."""
    if path.is_dir():
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: take the training split, or the only one
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        for i, row in enumerate(ds):
            yield f"{path}, row {i}", row
        return
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}, row {i}", row
        return
    with _open_text(path) as f:
        if name.endswith(".csv"):
            for i, row in enumerate(csv.DictReader(f)):
                yield f"{path}, line {i + 2}", {k: _maybe_json(v) for k, v in row.items()}
            return
        head = f.read(1)
        while head and head.isspace():
            head = f.read(1)
        if head == "[":  # one JSON document holding a list of rows
            try:
                rows = json.loads(head + f.read())
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}).") from None
            for i, row in enumerate(rows):
                yield f"{path}, item {i}", row
            return
        f.seek(0)
        yield from iter_json_lines(f, path)


def _maybe_json(value: str | None) -> Any:
    """CSV cells hold conversational fields as JSON text; decode those, leave plain text alone."""
    if value and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _detect(row: Any) -> str:
    if isinstance(row, dict):
        if "prediction 1" in row or "responses" in row:
            return "kway"
        c = row.get("chosen")
        if isinstance(c, str) and c.lstrip("\n").startswith("Human:") and "prompt" not in row:
            return "hh"
    return "records"


# --------------------------------------------------------------------------------------------- HH-RLHF

_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh_transcript(text: str, *, where: str) -> list[Message]:
    """Split "\\n\\nHuman: ...\\n\\nAssistant: ..." into messages (an empty final assistant turn is kept)."""
    if not text.startswith("\n\nHuman:") and text.startswith("Human:"):
        text = "\n\n" + text
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(f"{where}: a transcript must start with '\\n\\nHuman: ', got {text[:40]!r}.")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def _parse_hh_row(row: dict, where: str) -> list[PreferenceRecord]:
    texts = {}
    for key in ("chosen", "rejected"):
        if not isinstance(row.get(key), str):
            raise DataError(f"{where}, field `{key}`: expected a transcript string, "
                            f"got {type(row.get(key)).__name__}.")
        texts[key] = row[key]
    # The prompt is the shared text up to and including the last "\n\nAssistant:" both transcripts reach.
    common = _common_prefix(texts["chosen"], texts["rejected"])
    cut = common.rfind("\n\nAssistant:")
    if cut < 0:
        raise DataError(f"{where}, field `chosen`: the two transcripts share no Human turn followed by an "
                        "Assistant reply.")
    end = cut + len("\n\nAssistant:")
    prompt = parse_hh_transcript(texts["chosen"][:cut], where=f"{where}, field `chosen`")
    if prompt[-1]["role"] != "user":
        raise DataError(f"{where}, field `chosen`: the prompt must end with a Human turn.")
    chosen = _hh_reply(texts["chosen"][end:])
    rejected = _hh_reply(texts["rejected"][end:])
    return [PreferenceRecord(prompt=prompt, chosen=chosen, rejected=rejected, source="hh-rlhf")]


def _hh_reply(rest: str) -> list[Message]:
    """The assistant reply after the shared prompt; where the transcripts diverge earlier, all turns."""
    return parse_hh_transcript("\n\nAssistant: " + rest.lstrip(" "), where="reply") if rest.strip() else \
        [{"role": "assistant", "content": ""}]


def _common_prefix(a: str, b: str) -> str:
    n = 0
    limit = min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return a[:n]


# ------------------------------------------------------------------------------------------- K-way

def _literal(value: Any, where: str, name: str) -> Any:
    """FineGrainedRLHF stores lists as Python literals inside strings."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise DataError(f"{where}, field `{name}`: cannot parse {value[:40]!r} as a list.") from None


def _kway_prompt(row: dict, where: str) -> list[Message]:
    if "prompt" in row:
        return messages_from(row["prompt"], "user", where=f"{where}, field `prompt`")
    if not isinstance(row.get("question"), str):
        raise DataError(f"{where}, field `question`: expected a string.")
    text = row["question"].strip()
    passages = _literal(row.get("passages", []), where, "passages") or []
    if passages:
        shown = []
        for p in passages:
            if isinstance(p, (list, tuple)) and len(p) == 2:
                shown.append(f"{p[0]}: {p[1]}" if not str(p[1]).startswith(str(p[0])) else str(p[1]))
            else:
                shown.append(str(p))
        text = f"{text}\n\nPassages:\n" + "\n\n".join(shown)
    return as_chat(text)


def _parse_kway_row(row: dict, where: str) -> list[PreferenceRecord]:
    prompt = _kway_prompt(row, where)
    if "responses" in row:
        responses = row["responses"]
        if not isinstance(responses, list) or len(responses) < 2:
            raise DataError(f"{where}, field `responses`: expected a list of at least 2 responses.")
    else:
        k = 1
        while f"prediction {k}" in row:
            k += 1
        responses = [row[f"prediction {i}"] for i in range(1, k)]
        if len(responses) < 2:
            raise DataError(f"{where}, field `prediction 2`: a K-way row needs at least 2 predictions.")
    for i, r in enumerate(responses):
        if not isinstance(r, str):
            raise DataError(f"{where}, field `prediction {i + 1}`: expected a string, "
                            f"got {type(r).__name__}.")
    pairs = list(itertools.combinations(range(len(responses)), 2))
    prefs = _literal(row.get("preference"), where, "preference")
    if not isinstance(prefs, list) or len(prefs) != len(pairs):
        raise DataError(f"{where}, field `preference`: expected {len(pairs)} judgements (one per pair), "
                        f"got {prefs!r}.")
    records = []
    for (i, j), p in zip(pairs, prefs):
        if p not in (0, 1, 2):
            raise DataError(f"{where}, field `preference`: judgements are 0 (tie), 1 or 2, got {p!r}.")
        a, b = (i, j) if p in (0, 1) else (j, i)
        records.append(PreferenceRecord(
            prompt=prompt,
            chosen=[{"role": "assistant", "content": responses[a]}],
            rejected=[{"role": "assistant", "content": responses[b]}],
            tie=p == 0, pair_id=f"{row.get('id', where.rsplit(' ', 1)[-1])}:{i + 1}-{j + 1}",
            source=row.get("source", "kway")))
    return records


def _parse_record_row(row: dict, where: str) -> list[PreferenceRecord]:
    return [PreferenceRecord.from_dict(row, where=where)]
