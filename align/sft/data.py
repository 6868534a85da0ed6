"""SFT examples as TRL's conversational prompt/completion rows (so the loss covers completions only)."""

from __future__ import annotations

from pathlib import Path

from foundation.errors import DataError
from foundation.readers import read_preferences
from foundation.records import first_json_row, iter_json_lines, messages_from

__all__ = ["read_sft_examples"]


def read_sft_examples(path: str, format: str = "auto", *, skip_invalid: bool = False,
                      max_samples: int | None = None) -> list[dict]:
    """Rows `{"prompt": [...], "completion": [...]}` from a chat file (`{"messages": [...]}` per line,
    the last message the assistant's) or, for any preference file, its prompt and chosen response."""
    if _is_messages_file(Path(path)):
        rows = []
        with open(path, encoding="utf-8") as f:
            for where, row in iter_json_lines(f, path):
                try:
                    if isinstance(row, DataError):
                        raise row
                    msgs = messages_from(row.get("messages"), "user", where=f"{where}, field `messages`")
                    if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
                        raise DataError(f"{where}, field `messages`: needs at least one turn before a final "
                                        "assistant message.")
                except DataError as e:
                    if skip_invalid:
                        continue
                    raise DataError(f"{e} Fix the row, or pass --skip_invalid.") from None
                rows.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    else:
        data = read_preferences(path, format, skip_invalid=skip_invalid)
        rows = [{"prompt": r.prompt, "completion": r.chosen} for r in data.records if not r.tie]
    return rows[:max_samples] if max_samples else rows


def _is_messages_file(path: Path) -> bool:
    row = first_json_row(path)
    return isinstance(row, dict) and "messages" in row
