"""Candidate responses to label: what `align generate` writes and `align label import --format
candidates` reads. One JSON line per prompt:

    {"prompt_id": "p-0007", "prompt": [{"role": "user", "content": "..."}],
     "responses": [{"content": "...", "model": "builtin:smollm2-135m-instruct", "adapter": null,
                    "sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 128},
                    "logprobs": [-0.12, ...], "finished": true}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from foundation.errors import DataError
from foundation.readers import readable
from foundation.records import (
    Message,
    as_chat,
    first_json_row,
    iter_json_lines,
    messages_from,
    write_json_lines,
)

__all__ = ["Candidate", "CandidateSet", "read_candidates", "write_candidates", "read_prompts"]


@dataclass
class Candidate:
    content: str
    model: str | None = None
    adapter: str | None = None
    sampling: dict = field(default_factory=dict)
    logprobs: list[float] | None = None
    finished: bool | None = None


@dataclass
class CandidateSet:
    prompt_id: str
    prompt: list[Message]
    responses: list[Candidate]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_candidates(sets: Iterable[CandidateSet], path: str | Path) -> int:
    return write_json_lines((s.to_dict() for s in sets), path)


def read_candidates(path: str | Path) -> list[CandidateSet]:
    out = []
    with open(path, encoding="utf-8") as f:
        for where, row in readable(Path(path), iter_json_lines(f, path)):
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object with `prompt` and `responses`.")
            responses = row.get("responses")
            if not isinstance(responses, list) or len(responses) < 2:
                raise DataError(f"{where}, field `responses`: needs a list of at least 2 responses.")
            cands = []
            for i, r in enumerate(responses):
                if isinstance(r, str):
                    r = {"content": r}
                if not isinstance(r, dict) or not isinstance(r.get("content"), str):
                    raise DataError(f"{where}, field `responses[{i}]`: needs a string `content`.")
                known = {k: r[k] for k in ("content", "model", "adapter", "sampling", "logprobs", "finished")
                         if k in r}
                cands.append(Candidate(**known))
            prompt = messages_from(row.get("prompt"), "user", where=f"{where}, field `prompt`")
            out.append(CandidateSet(str(row.get("prompt_id", where.rsplit(", ", 1)[-1].replace(" ", "-"))),
                                    prompt, cands))
    return out


def read_prompts(path: str | Path, *, first_turn: bool = False) -> list[list[Message]]:
    """Prompts from a .txt file (one per line), a JSONL of `{"prompt": text or messages}`, or any
    preference file (its prompts, each once, in order). `first_turn`: each conversation's first user
    message alone (the request that opened it, without the turns, and answers, that followed)."""
    prompts = _read_prompts(Path(path))
    if not first_turn:
        return prompts
    seen, firsts = set(), []
    for messages in prompts:
        first = next((m for m in messages if m["role"] == "user"), None)
        if first is not None and first["content"].strip() and first["content"] not in seen:
            seen.add(first["content"])
            firsts.append([{"role": "user", "content": first["content"]}])
    return firsts


def _read_prompts(path: Path) -> list[list[Message]]:
    if not path.exists():
        raise DataError(f"{path}: no such file.")
    if path.suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            return [as_chat(line.strip()) for line in readable(path, iter(f)) if line.strip()]
    from foundation.readers import read_preferences

    head = first_json_row(path) if path.suffix == ".jsonl" else None
    if isinstance(head, dict) and "prompt" in head and "chosen" not in head:
        prompts = []
        with open(path, encoding="utf-8") as f:
            for where, row in readable(path, iter_json_lines(f, path)):
                if isinstance(row, DataError):
                    raise row
                prompts.append(messages_from(row.get("prompt"), "user", where=f"{where}, field `prompt`"))
        return prompts
    seen, prompts = set(), []
    for r in read_preferences(path).records:
        key = json.dumps(r.prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(r.prompt)
    return prompts
