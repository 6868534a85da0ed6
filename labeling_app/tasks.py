"""Task kinds beyond pairs, on the one labeling queue (`labeling_app.queue`: k answers from distinct
labelers, never the same task twice, atomic claims that expire, gold tasks mixed in, skips that come
back, undo, an answer committed before it is acknowledged, nothing updated in place): single-response
**ratings** (good / bad, what KTO trains on) and **K-way rankings** (K ≥ 3
responses ranked 1 = best, ties allowed; InstructGPT §3.5 trains a reward model on all C(K, 2) pairs).

`LabelStore.tasks` is this queue over the store's database:

>>> store.tasks.add_ratings(candidate_sets)               # one rating task per response
>>> t = store.tasks.next("ann", "rating")                 # None when nothing is left for ann
>>> store.tasks.submit_rating("ann", t.task_id, "good")
>>> store.tasks.add_rankings(candidate_sets)              # one ranking task per prompt (K >= 3)
>>> t = store.tasks.next("bob", "ranking")                # t.responses in a random order shown to bob
>>> store.tasks.submit_ranking("bob", t.task_id, [2, 1, 3])   # ranks in the order shown; 1 = best
>>> store.tasks.undo("bob", "ranking")                    # the same task comes back to bob, first

A task with a known answer (`gold`: "good" / "bad", or ranks in the stored order) is a gold task: served
at the store's `gold_rate`, never counted toward k, and it measures each labeler (`task_stats`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from foundation.records import Message
from foundation.stats import dense_ranks
from labeling_app.errors import LabelingError
from labeling_app.pairs import canonical_json, check_answer_fields
from labeling_app.queue import ANSWER_COLUMNS, KINDS, Shown

if TYPE_CHECKING:
    from labeling_app.store import LabelStore

__all__ = ["TASK_KINDS", "RATINGS", "Task", "Answer", "TaskQueue", "task_key"]

TASK_KINDS = tuple(kind for kind in KINDS if kind != "pair")      # ratings and rankings
MAX_RANKED = 9                  # responses per ranking task (the page's slots, A..I)
RATINGS = ("good", "bad")


@dataclass(frozen=True)
class Task(Shown):
    """A task as one labeler is shown it: `responses` in the order shown (`labeling_app.queue.Shown`)."""

    @property
    def task_id(self) -> str:
        return self.item_id

    @property
    def shown_order(self) -> list[int]:
        """Shown position i holds the task's stored response shown_order[i]."""
        return self.order


@dataclass(frozen=True)
class Answer:
    id: int
    task_id: str
    kind: str
    labeler: str
    answer: str | list[int]      # rating: "good" | "bad"; ranking: ranks in the task's stored order
    rationale: str
    seconds: float
    created_at: float
    gold: str | list[int] | None = None   # the task's known answer, for a gold task


def task_key(kind: str, prompt: list[Message], responses: list[list[Message]]) -> str:
    """A content hash: the same responses to the same prompt, in any order, are one task of a kind."""
    sides = sorted(canonical_json(r) for r in responses)
    return hashlib.sha256(canonical_json([kind, prompt, *sides]).encode()).hexdigest()[:16]


def check_ranks(ranks, k: int) -> list[int]:
    """Ranks of K responses as shown: integers, 1 = best, equal numbers a tie; the ranks used must be
    1..m without gaps after ties are counted (1, 1, 3 or 1, 1, 2 both read as "two tied best")."""
    if not isinstance(ranks, list) or len(ranks) != k:
        raise LabelingError(f"ranks must be a list of {k} integers (one per response, in the order shown), "
                            f"got {ranks!r}.")
    if any(isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= k for r in ranks):
        raise LabelingError(f"each rank must be an integer from 1 (best) to {k}, got {ranks!r}.")
    return dense_ranks(ranks, higher_first=False)           # 1, 1, 3 -> 1, 1, 2


class TaskQueue:
    """Ratings and rankings in the store's database (`LabelStore.tasks`), on the store's one queue."""

    def __init__(self, store: "LabelStore"):
        self.store = store

    # -- adding tasks -----------------------------------------------------------------------------

    def add(self, kind: str, items: Iterable[dict], *, batch: str | None = None) -> tuple[int, int]:
        """Tasks of `kind` from dicts with `prompt` and `responses` (lists of message lists), optional
        `provenance` (one dict per response), `gold` (the known answer: "good" / "bad", or ranks in the
        given order), `source`, `priority`, `where` (for errors). All or nothing; returns (added, already
        present)."""
        if kind not in TASK_KINDS:
            raise LabelingError(f"task kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}.")
        rows = list(items)
        gold = [self._check(kind, item) for item in rows]
        added = present = 0
        now = time.time()
        with self.store.write() as conn:
            if batch:
                self.store.declare_batch(conn, batch, "train", now)
            for item, known in zip(rows, gold):
                prompt, responses = item["prompt"], item["responses"]
                new = self.store.insert_item(
                    conn, kind, task_key(kind, prompt, responses), prompt, responses,
                    item.get("provenance") or [{} for _ in responses], gold=known, batch=batch,
                    source=item.get("source"), priority=float(item.get("priority", 0.0)), now=now)
                added, present = added + new, present + (not new)
        return added, present

    def _check(self, kind: str, item: dict) -> str | None:
        """Refuse a task that its kind cannot show; its gold answer as stored (or None)."""
        where = item.get("where", "task")
        n = len(item["responses"])
        if (kind == "rating" and n != 1) or (kind == "ranking" and not 3 <= n <= MAX_RANKED):
            wanted = "one response" if kind == "rating" else f"3 to {MAX_RANKED} responses"
            raise LabelingError(f"{where}: a {kind} task takes {wanted}, got {n}.")
        self.store.check_text(item["prompt"], f"{where}: `prompt`")
        for i, r in enumerate(item["responses"]):
            self.store.check_text(r, f"{where}: response {i + 1}")
        gold = item.get("gold")
        if gold is None:
            return None
        try:
            return _rating(gold) if kind == "rating" else json.dumps(check_ranks(gold, n))
        except LabelingError as e:
            raise LabelingError(f"{where}: `gold`: {e}") from None

    def add_ratings(self, sets, *, batch: str | None = None) -> tuple[int, int]:
        """One rating task per distinct non-empty response of each candidate set."""
        return self.add("rating", ({"prompt": s.prompt, "responses": [[_assistant(c.content)]],
                                    "where": f"prompt {s.prompt_id}", "source": "candidates"}
                                   for s in sets for c in _distinct(s.responses)), batch=batch)

    def add_rankings(self, sets, *, batch: str | None = None) -> tuple[int, int]:
        """One ranking task per candidate set with at least 3 distinct non-empty responses (the first
        `MAX_RANKED` of them)."""
        items = []
        for s in sets:
            cands = _distinct(s.responses)
            if len(cands) >= 3:
                responses = [[_assistant(c.content)] for c in cands[:MAX_RANKED]]
                items.append({"prompt": s.prompt, "responses": responses,
                              "where": f"prompt {s.prompt_id}", "source": "candidates"})
        if not items:
            raise LabelingError("no prompt has 3 or more distinct responses: a ranking needs K >= 3 "
                                "(import them as pairs instead).")
        return self.add("ranking", items, batch=batch)

    # -- the queue --------------------------------------------------------------------------------

    def next(self, labeler: str, kind: str, *, batch: str | None = None) -> Task | None:
        """The labeler's open claim on a task of `kind`, else a new claim on the next one (gold at the
        store's `gold_rate`, otherwise the highest priority, then the oldest, then the ones they
        skipped), its responses in an order drawn for them; None when nothing is left for them."""
        return self.store.claim(labeler, kind, self._task, batch=batch)

    @staticmethod
    def _task(shown: Shown) -> Task:
        return Task(**vars(shown))

    def submit_rating(self, labeler: str, task_id: str, rating: str, rationale: str = "",
                      request_id: str | None = None) -> Answer:
        """Store a good / bad rating of the task's response; returns once it is committed."""
        stored = _rating(rating)
        return self._submit(labeler, task_id, "rating", lambda order: stored, rationale, request_id)

    def submit_ranking(self, labeler: str, task_id: str, ranks: list[int], rationale: str = "",
                       request_id: str | None = None) -> Answer:
        """Store a ranking: `ranks` one integer per response in the order shown (1 = best, equal = tie)."""
        def stored(order: list[int]) -> str:
            shown = check_ranks(ranks, len(order))
            out = [0] * len(order)
            for position, response in enumerate(order):
                out[response] = shown[position]
            return json.dumps(out)
        return self._submit(labeler, task_id, "ranking", stored, rationale, request_id)

    def _submit(self, labeler, task_id, kind, stored, rationale, request_id) -> Answer:
        check_answer_fields("task_id", task_id, rationale, request_id)
        return _as_answer(self.store.answer(labeler, task_id, kind, stored, rationale=rationale or "",
                                            request_id=request_id))

    def skip(self, labeler: str, task_id: str, kind: str | None = None) -> None:
        """Give the task back: others may answer it, and this labeler gets it again once nothing new of
        its kind is left for them."""
        kind = kind or self._kind(task_id)
        self.store.skip_item(labeler, task_id, kind)

    def undo(self, labeler: str, kind: str) -> Answer | None:
        """Retract the labeler's last live answer of `kind` and give them that task again, first; None if
        there is none."""
        answer_id = self.store.retract_last(labeler, kind)
        if answer_id is None:
            return None
        return _as_answer(self.store.read(ANSWER_COLUMNS.format(table="answers") + " WHERE a.id = ?",
                                          (answer_id,))[0])

    def _kind(self, task_id: str) -> str:
        rows = self.store.read("SELECT kind FROM items WHERE item_id = ? AND kind IN ('rating', 'ranking')",
                               (task_id,))
        return rows[0][0] if rows else "rating"

    # -- reading ----------------------------------------------------------------------------------

    def answers(self, kind: str | None = None, *, gold: bool = False) -> list[Answer]:
        """Live answers (of `kind`), oldest first; those on gold tasks only with `gold=True` (they measure
        labelers and never train anything)."""
        rows = self.store.read(ANSWER_COLUMNS.format(table="live_answers") +
                               " WHERE i.kind IN ('rating', 'ranking') AND (:kind IS NULL OR i.kind = :kind) "
                               "AND (:gold OR i.gold IS NULL) ORDER BY a.id", {"kind": kind, "gold": gold})
        return [_as_answer(r) for r in rows]

    def tasks(self, kind: str, *, gold: bool = False) -> list[tuple[str, list[Message], list[list[Message]]]]:
        """(task_id, prompt, responses in stored order) of every task of `kind` (gold ones with `gold`)."""
        rows = self.store.read("SELECT i.item_id, p.messages, i.responses FROM items i JOIN prompts p "
                               "ON p.id = i.prompt_id WHERE i.kind = ? AND (? OR i.gold IS NULL) "
                               "ORDER BY i.seq", (kind, gold))
        texts = dict(self.store.read("SELECT id, messages FROM responses WHERE prompt_id IN "
                                     "(SELECT prompt_id FROM items WHERE kind = ?)", (kind,)))
        return [(task_id, json.loads(prompt), [json.loads(texts[i]) for i in json.loads(ids)])
                for task_id, prompt, ids in rows]

    def counts(self, kind: str) -> dict[str, int]:
        """Live answers per task of `kind` (gold tasks included)."""
        return dict(self.store.read("SELECT i.item_id, (SELECT COUNT(*) FROM live_answers a WHERE "
                                    "a.item_seq = i.seq) FROM items i WHERE i.kind = ?", (kind,)))


def _rating(rating) -> str:
    if not isinstance(rating, str) or rating not in RATINGS:
        raise LabelingError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}.")
    return rating


def _as_answer(row) -> Answer:
    """An `Answer` from an answer's row (`labeling_app.queue.ANSWER_COLUMNS`)."""
    answer_id, task_id, kind, labeler, answer, _, rationale, _, seconds, created_at, gold = row

    def read(stored):
        return stored if kind == "rating" or stored is None else json.loads(stored)
    return Answer(answer_id, task_id, kind, labeler, read(answer), rationale, seconds, created_at, read(gold))


def _assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def _distinct(candidates) -> list:
    return [c for i, c in enumerate(candidates)
            if c.content.strip() and all(c.content != d.content for d in candidates[:i])]
