"""The preference record: the contract between the labeling app, the reward models and the trainers.

It is TRL's conversational preference format plus labeling metadata, so that an export trains
unchanged with TRL's DPOTrainer/RewardTrainer and with our own trainers:

    {"prompt":   [{"role": "user", "content": "..."}, ...],
     "chosen":   [{"role": "assistant", "content": "..."}],
     "rejected": [{"role": "assistant", "content": "..."}],
     "margin": 2.0, "tie": false,
     "labeler": "ann-07", "pair_id": "...", "shown_order": "AB", "source": "hh-rlhf"}

For a tie, `chosen` and `rejected` are simply the two responses in the order they were compared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from foundation.errors import DataError

__all__ = ["Message", "PreferenceRecord", "ROLES", "STRENGTH_MARGINS", "messages_from", "write_jsonl",
           "write_json_lines", "iter_json_lines", "to_hf_dataset"]

Message = dict[str, str]
ROLES = ("system", "user", "assistant")

# The Llama 2 strength scale (Touvron et al. 2023, Sec. 3.2.2) as margins for the ranking loss:
# strength 1..4 = negligibly / slightly / better / significantly better.
STRENGTH_MARGINS = {1: 0.0, 2: 1 / 3, 3: 2 / 3, 4: 1.0}


def messages_from(value: Any, role: str, *, where: str) -> list[Message]:
    """Normalise plain text or a list of messages into a list of `{"role", "content"}` dicts.

    `where` names the file, line and field for the error message.
    """
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict) and "content" in value:
        value = [value]
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a string or a non-empty list of messages, got {_short(value)}.")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}[{i}]: a message needs `role` and `content`, got {_short(m)}.")
        if m["role"] not in ROLES:
            raise DataError(f"{where}[{i}]: role must be one of {', '.join(ROLES)}, got {m['role']!r}.")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}[{i}]: `content` must be a string, got {_short(m['content'])}.")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class PreferenceRecord:
    """One comparison of two responses to the same prompt."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    margin: float = 0.0
    tie: bool = False
    labeler: str | None = None
    pair_id: str | None = None
    shown_order: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], *, where: str = "record") -> "PreferenceRecord":
        """Build a record from a dict in plain or conversational form; extra keys are ignored."""
        for key in ("chosen", "rejected"):
            if key not in row or row[key] is None:
                raise DataError(f"{where}: missing field `{key}`.")
        chosen = messages_from(row["chosen"], "assistant", where=f"{where}, field `chosen`")
        rejected = messages_from(row["rejected"], "assistant", where=f"{where}, field `rejected`")
        if row.get("prompt") in (None, "", []):
            # TRL's "implicit prompt" form: whole conversations; the prompt is their shared prefix.
            n = 0
            while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
                n += 1
            if n == 0:
                raise DataError(f"{where}: missing field `prompt` and `chosen`/`rejected` share no turn.")
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        else:
            prompt = messages_from(row["prompt"], "user", where=f"{where}, field `prompt`")
        margin = row.get("margin", 0.0)
        if margin is None:
            margin = 0.0
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            try:
                margin = float(margin)
            except (TypeError, ValueError):
                raise DataError(f"{where}, field `margin`: expected a number, "
                                f"got {_short(margin)}.") from None
        tie = row.get("tie", False)
        if isinstance(tie, str):
            if tie.strip().lower() not in ("true", "false", "1", "0", ""):
                raise DataError(f"{where}, field `tie`: expected true or false, got {tie!r}.")
            tie = tie.strip().lower() in ("true", "1")
        known = {f.name for f in fields(cls)} - {"prompt", "chosen", "rejected", "margin", "tie"}
        meta = {k: (None if row.get(k) is None else str(row[k])) for k in known}
        return cls(prompt=prompt, chosen=chosen, rejected=rejected, margin=float(margin), tie=bool(tie),
                   **meta)


def as_chat(prompt: str | Sequence[Message]) -> list[Message]:
    """A prompt as chat messages: a string becomes one user turn; messages are kept as they are."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def first_json_row(path: str | Path) -> Any:
    """The first non-blank line of a `.jsonl`/`.json` file, parsed; None when there is none or it is
    not a JSON line (callers use it to recognise a file's kind before reading it in full)."""
    path = Path(path)
    if path.is_dir() or path.suffix not in (".jsonl", ".json"):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        return json.loads(first) if first else None
    except json.JSONDecodeError:
        return None


def iter_json_lines(lines: Iterable[str], path: str | Path):
    """Yield `("FILE, line N", row)` for each non-blank JSON line; a line that is not valid JSON yields a
    `DataError` as its row, so that the caller decides whether to stop or to skip and count it."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            yield where, DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}).")


def write_json_lines(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write dicts as JSON lines, atomically: a crash never leaves half a file. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def write_jsonl(records: Iterable[PreferenceRecord], path: str | Path) -> int:
    """Write preference records as JSON lines (atomically). Returns the count."""
    return write_json_lines((r.to_dict() for r in records), path)


def to_hf_dataset(records: Iterable[PreferenceRecord]):
    """A `datasets.Dataset` with one column per record field (TRL reads it as is)."""
    from datasets import Dataset

    rows = [r.to_dict() for r in records]
    if not rows:
        return Dataset.from_dict({f.name: [] for f in fields(PreferenceRecord)})
    return Dataset.from_list(rows)
