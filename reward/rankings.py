"""Reward models on K-way rankings, as InstructGPT trains them (§3.5): each response of a ranking is
scored once, and the loss is taken over all C(K, 2) of its pairs in the same step (`ranking_loss`),
instead of expanding the ranking into pairs that score every response K − 1 times.

Rankings come from the labeling app's export (`rankings.jsonl`: `prompt`, `responses`, `ranks`, 1 =
best, equal = tie) or from K-way comparison data (FineGrainedRLHF's `prediction 1..K` + `preference`,
ranked by wins over the pairwise judgements, ties half).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import DataError
from foundation.records import Message, messages_from

__all__ = ["Ranking", "read_rankings", "is_rankings_file", "encode_rankings", "RankingCollator"]


@dataclass
class Ranking:
    prompt: list[Message]
    responses: list[list[Message]]
    ranks: list[int]


def is_rankings_file(path: str) -> bool:
    from foundation.records import first_json_row

    row = first_json_row(path) if str(path).endswith(".jsonl") else None
    return isinstance(row, dict) and "ranks" in row and "responses" in row


def read_rankings(path: str, max_samples: int | None = None) -> list[Ranking]:
    """Rankings from a rankings JSONL file; a bad row names its line and field."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}: line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where} is not JSON ({e.msg}).") from None
            responses, ranks = row.get("responses"), row.get("ranks")
            if not isinstance(responses, list) or len(responses) < 2:
                raise DataError(f"{where}, field `responses`: expected a list of at least 2 responses.")
            if (not isinstance(ranks, list) or len(ranks) != len(responses)
                    or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ranks)):
                raise DataError(f"{where}, field `ranks`: expected {len(responses)} integers >= 1 "
                                f"(1 = best).")
            out.append(Ranking(messages_from(row.get("prompt"), "user", where=f"{where}, field `prompt`"),
                               [messages_from(r, "assistant", where=f"{where}, field `responses`")
                                for r in responses], ranks))
    if not out:
        raise DataError(f"{path}: no rankings to train on.")
    return out[:max_samples] if max_samples else out


def encode_rankings(tokenizer, rankings: list[Ranking], max_length: int) -> tuple[list[dict], int]:
    """Dataset rows (`ids`: K token-id lists, `ranks`, `length`) and how many responses were truncated."""
    from reward.model import encode_pair_side

    rows, truncated = [], 0
    for r in rankings:
        encoded = [encode_pair_side(tokenizer, r.prompt, response, max_length) for response in r.responses]
        truncated += sum(t for _, t in encoded)
        ids = [i for i, _ in encoded]
        rows.append({"ids": ids, "ranks": r.ranks, "length": max(len(i) for i in ids)})
    return rows, truncated


class RankingCollator:
    """Rankings -> one right-padded batch of all their responses, with `sizes` and `ranks`."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        from reward.model import right_pad

        ids, mask = right_pad([seq for f in features for seq in f["ids"]], self.pad)
        return {"input_ids": ids, "attention_mask": mask,
                "sizes": torch.tensor([len(f["ids"]) for f in features]),
                "ranks": torch.tensor([r for f in features for r in f["ranks"]])}
