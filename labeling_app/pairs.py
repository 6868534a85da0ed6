"""What the store holds, as the rest of the app sees it: pairs (two responses to one prompt),
assignments (a pair as one labeler is shown it) and labels; the checks every label passes; the pair's
content key; and the pairs that a candidates file (K responses per prompt) makes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from foundation.records import Message
from labeling_app.errors import LabelingError

__all__ = ["CHOICES", "PURPOSES", "ROLES", "STRENGTHS", "SWAP", "Pair", "Assignment", "Label", "pair_key",
           "canonical_json", "candidate_pairs", "check_answer_fields", "check_label_input",
           "shown_order_name"]

CHOICES = ("A", "B", "tie", "both_bad")
ROLES = ("labeler", "admin")
PURPOSES = ("train", "evaluation")          # what a batch of pairs is for (schema step 4)
STRENGTHS = {1: "negligibly better", 2: "slightly better", 3: "better", 4: "significantly better"}
SWAP = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad"}


@dataclass(frozen=True)
class Pair:
    """Two responses to one prompt, in stored order (A, B)."""

    pair_id: str
    prompt: list[Message]
    response_a: list[Message]
    response_b: list[Message]
    gold_choice: str | None = None
    priority: float = 0.0
    batch: str | None = None
    source: str | None = None
    provenance_a: dict | None = None
    provenance_b: dict | None = None


@dataclass(frozen=True)
class Assignment:
    """A pair as one labeler sees it: `left`/`right` are the responses in the order shown."""

    pair_id: str
    prompt: list[Message]
    left: list[Message]
    right: list[Message]
    shown_order: str          # "AB": left is the stored A; "BA": left is the stored B
    claimed_at: float


@dataclass(frozen=True)
class Label:
    id: int
    pair_id: str
    labeler: str
    choice: str               # in stored order: "A" means the pair's response_a
    strength: int
    rationale: str
    shown_order: str
    seconds: float
    created_at: float

    @property
    def shown_choice(self) -> str:
        """The choice as the labeler saw it ("A" = the left response)."""
        return self.choice if self.shown_order == "AB" else SWAP[self.choice]


def shown_order_name(order: str | list[int]) -> str:
    """A pair's shown order as the queue stores it (a JSON list, screen position i showing stored response
    [i]) in the pair's own words: "AB" (left is the stored A) or "BA"."""
    order = json.loads(order) if isinstance(order, str) else order
    return "AB" if list(order) == [0, 1] else "BA"


def check_answer_fields(item_field: str, item_id, rationale, request_id) -> None:
    """Strict types for what every answer carries (a pair's label, a rating, a ranking): the id of what
    it answers, an optional rationale, an optional request id; a refusal names the field and value."""
    if not isinstance(item_id, str) or not item_id:
        raise LabelingError(f"{item_field} must be the {item_field.split('_')[0]}'s id (a string), "
                            f"got {item_id!r}.")
    if rationale is not None and not isinstance(rationale, str):
        raise LabelingError(f"rationale must be text (or empty), got {type(rationale).__name__} "
                            f"{rationale!r}.")
    if rationale and len(rationale) > 4000:
        raise LabelingError(f"the rationale has {len(rationale):,} characters; keep it under 4,000.")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 200):
        raise LabelingError(f"request_id must be a string of 1-200 characters, got {request_id!r}.")


def check_label_input(pair_id, choice, strength, rationale, request_id) -> None:
    """Strict types for a label from a form or an API call: a refusal names the field and the value."""
    check_answer_fields("pair_id", pair_id, rationale, request_id)
    if not isinstance(choice, str) or choice not in CHOICES:
        raise LabelingError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}.")
    if isinstance(strength, bool) or not isinstance(strength, int) or strength not in STRENGTHS:
        raise LabelingError(f"strength must be an integer 1-4 (negligibly, slightly, better, significantly "
                            f"better), got {strength!r}.")


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: equal values give equal strings (keys, hashes)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def pair_key(prompt: list[Message], a: list[Message], b: list[Message]) -> str:
    """A content hash: the same two responses to the same prompt, in either order, are one pair."""
    sides = sorted([canonical_json(a), canonical_json(b)])
    return hashlib.sha256(canonical_json([prompt, *sides]).encode()).hexdigest()[:16]


def candidate_pairs(sets, *, pairs_per_prompt: int | None = None, source: str = "candidates") -> list[dict]:
    """`add_pairs` items from candidate sets: every two distinct non-empty responses of a prompt (or
    the first `pairs_per_prompt` of those combinations), with their provenance."""
    from itertools import combinations

    items = []
    for s in sets:
        cands = [c for i, c in enumerate(s.responses)
                 if c.content.strip() and all(c.content != d.content for d in s.responses[:i])]
        for a, b in list(combinations(cands, 2))[:pairs_per_prompt]:
            items.append({"prompt": s.prompt, "where": f"prompt {s.prompt_id}", "source": source,
                          "response_a": [{"role": "assistant", "content": a.content}],
                          "response_b": [{"role": "assistant", "content": b.content}],
                          "provenance_a": _provenance(a), "provenance_b": _provenance(b)})
    return items


def _provenance(candidate) -> dict:
    return {k: v for k, v in (("model", candidate.model), ("adapter", candidate.adapter),
                              ("sampling", candidate.sampling or None), ("logprobs", candidate.logprobs),
                              ("finished", candidate.finished)) if v is not None}
