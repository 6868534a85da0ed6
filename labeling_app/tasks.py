"""Task kinds beyond pairs, on the queue rules of pairs (k answers from distinct labelers, never the same
task twice, atomic claims that expire, an answer committed before it is acknowledged, nothing updated
in place): single-response **ratings** (good / bad, what KTO trains on) and **K-way rankings** (K ≥ 3
responses ranked 1 = best, ties allowed; InstructGPT §3.5 trains a reward model on all C(K, 2) pairs).

`LabelStore.tasks` is this queue over the store's database:

>>> store.tasks.add_ratings(candidate_sets)               # one rating task per response
>>> t = store.tasks.next("ann", "rating")                 # None when nothing is left for ann
>>> store.tasks.submit_rating("ann", t.task_id, "good")
>>> store.tasks.add_rankings(candidate_sets)              # one ranking task per prompt (K >= 3)
>>> t = store.tasks.next("bob", "ranking")                # t.responses in a random order shown to bob
>>> store.tasks.submit_ranking("bob", t.task_id, [2, 1, 3])   # ranks in the order shown; 1 = best
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from foundation.records import Message
from foundation.stats import dense_ranks
from labeling_app.errors import LabelingError, NotAssignedError
from labeling_app.pairs import canonical_json, check_answer_fields

if TYPE_CHECKING:
    from labeling_app.store import LabelStore

__all__ = ["KINDS", "RATINGS", "Task", "Answer", "TaskQueue", "task_key"]

KINDS = ("rating", "ranking")
MAX_RANKED = 9                  # responses per ranking task (the page's slots, A..I)
RATINGS = ("good", "bad")


@dataclass(frozen=True)
class Task:
    """A task as one labeler is shown it: `responses` in the order shown."""

    task_id: str
    kind: str
    prompt: list[Message]
    responses: list[list[Message]]
    shown_order: list[int]       # shown position i holds the task's stored response shown_order[i]
    claimed_at: float


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
    """Ratings and rankings in the store's database (`LabelStore.tasks`)."""

    _LOAD = ("(SELECT COUNT(*) FROM task_claims x WHERE x.task_seq = t.seq AND "
             "(x.status = 'done' OR (x.status = 'open' AND x.expires_at > :now)))")
    _HELD = f"(c.expires_at > :now OR {_LOAD} < :k)"

    def __init__(self, store: "LabelStore"):
        self.store = store

    # -- adding tasks -----------------------------------------------------------------------------

    def add(self, kind: str, items: Iterable[dict], *, batch: str | None = None) -> tuple[int, int]:
        """Tasks of `kind` from dicts with `prompt` and `responses` (lists of message lists), optional
        `provenance` (one dict per response), `source`, `priority`, `where` (for errors). All or nothing;
        returns (added, already present)."""
        if kind not in KINDS:
            raise LabelingError(f"task kind must be one of {', '.join(KINDS)}, got {kind!r}.")
        rows = list(items)
        for item in rows:
            where = item.get("where", "task")
            n = len(item["responses"])
            if (kind == "rating" and n != 1) or (kind == "ranking" and not 3 <= n <= MAX_RANKED):
                wanted = "one response" if kind == "rating" else f"3 to {MAX_RANKED} responses"
                raise LabelingError(f"{where}: a {kind} task takes {wanted}, got {n}.")
            self.store.check_text(item["prompt"], f"{where}: `prompt`")
            for i, r in enumerate(item["responses"]):
                self.store.check_text(r, f"{where}: response {i + 1}")
        added = present = 0
        now = time.time()
        with self.store.write() as conn:
            for item in rows:
                new = self._insert(conn, kind, item, batch, now)
                added, present = added + new, present + (not new)
        return added, present

    def _insert(self, conn, kind: str, item: dict, batch: str | None, now: float) -> bool:
        key = task_key(kind, item["prompt"], item["responses"])
        if conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (key,)).fetchone():
            return False
        provenance = item.get("provenance") or [{} for _ in item["responses"]]
        prompt_id = self.store.prompt_id(conn, item["prompt"], now)
        ids = [self.store.response_id(conn, prompt_id, r, p, now)
               for r, p in zip(item["responses"], provenance)]
        conn.execute("INSERT INTO tasks (task_id, kind, prompt_id, responses, batch, source, priority, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (key, kind, prompt_id, json.dumps(ids), batch, item.get("source"),
                      float(item.get("priority", 0.0)), now))
        return True

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
        """The labeler's open claim on a task of `kind`, else a new claim on the next one (highest
        priority, then oldest); None when nothing is left for them."""
        store = self.store
        store.role(labeler)
        now = time.time()
        args = {"now": now, "k": store.k, "who": labeler, "kind": kind, "batch": batch}
        with store.write() as conn:
            open_row = conn.execute(
                f"SELECT c.id, {self._HELD} FROM task_claims c JOIN tasks t ON t.seq = c.task_seq "
                "WHERE c.labeler = :who AND c.status = 'open' AND t.kind = :kind ORDER BY c.id LIMIT 1",
                args).fetchone()
            if open_row:
                if open_row[1]:
                    conn.execute("UPDATE task_claims SET expires_at = ? WHERE id = ?",
                                 (now + store.claim_timeout, open_row[0]))
                    return self._task(conn, open_row[0])
                conn.execute("UPDATE task_claims SET status = 'expired' WHERE id = ?", (open_row[0],))
            row = conn.execute(
                "SELECT t.seq, t.responses FROM tasks t WHERE t.kind = :kind AND t.completed = 0 "
                "AND (:batch IS NULL OR t.batch = :batch) AND NOT EXISTS "
                "(SELECT 1 FROM task_claims y WHERE y.task_seq = t.seq AND y.labeler = :who) "
                f"AND {self._LOAD} < :k ORDER BY t.priority DESC, t.seq LIMIT 1", args).fetchone()
            if row is None:
                return None
            order = list(range(len(json.loads(row[1]))))
            store.draw(lambda rng: rng.shuffle(order))
            claim = conn.execute("INSERT INTO task_claims (task_seq, labeler, shown_order, claimed_at, "
                                 "expires_at, status) VALUES (?, ?, ?, ?, ?, 'open') RETURNING id",
                                 (row[0], labeler, json.dumps(order), now, now + store.claim_timeout))
            return self._task(conn, claim.fetchone()[0])

    def _task(self, conn, claim_id: int) -> Task:
        task_id, kind, prompt, responses, order, claimed = conn.execute(
            "SELECT t.task_id, t.kind, p.messages, t.responses, c.shown_order, c.claimed_at "
            "FROM task_claims c JOIN tasks t ON t.seq = c.task_seq JOIN prompts p ON p.id = t.prompt_id "
            "WHERE c.id = ?",
            (claim_id,)).fetchone()
        ids, order = json.loads(responses), json.loads(order)
        marks = ",".join("?" * len(ids))
        texts = dict(conn.execute(f"SELECT id, messages FROM responses WHERE id IN ({marks})", ids))
        shown = [json.loads(texts[ids[i]]) for i in order]
        return Task(task_id, kind, json.loads(prompt), shown, order, claimed)

    def submit_rating(self, labeler: str, task_id: str, rating: str, rationale: str = "",
                      request_id: str | None = None) -> Answer:
        """Store a good / bad rating of the task's response; returns once it is committed."""
        if not isinstance(rating, str) or rating not in RATINGS:
            raise LabelingError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}.")
        return self._submit(labeler, task_id, "rating", lambda order: rating, rationale, request_id)

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

    def _submit(self, labeler, task_id, kind, encode, rationale, request_id) -> Answer:
        check_answer_fields("task_id", task_id, rationale, request_id)
        store = self.store
        store.role(labeler)
        now = time.time()
        with store.write() as conn:
            if request_id is not None:
                done = conn.execute("SELECT id FROM task_answers WHERE labeler = ? AND request_id = ?",
                                    (labeler, request_id)).fetchone()
                if done:
                    return self._answer(conn, done[0])
            row = conn.execute(
                f"SELECT c.id, c.status, c.shown_order, c.claimed_at, {self._HELD}, t.kind, t.seq "
                "FROM task_claims c JOIN tasks t ON t.seq = c.task_seq "
                "WHERE t.task_id = :task AND c.labeler = :who",
                {"now": now, "k": store.k, "task": task_id, "who": labeler}).fetchone()
            if row is None or row[5] != kind:
                raise NotAssignedError(f"{kind} task {task_id!r} is not assigned to {labeler!r}; "
                                       f"ask for the next one.")
            claim, status, order, claimed_at, still_yours, _, seq = row
            if status != "open" or not still_yours:
                why = "the claim expired" if status == "open" else status
                raise NotAssignedError(f"{labeler!r} cannot answer task {task_id!r} now ({why}); "
                                       f"nothing was stored; ask for the next one.")
            answer_id = conn.execute(
                "INSERT INTO task_answers (claim_id, task_seq, labeler, answer, rationale, seconds, "
                "created_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (claim, seq, labeler, encode(json.loads(order)), rationale or "", max(0.0, now - claimed_at),
                 now, request_id)).fetchone()[0]
            conn.execute("UPDATE task_claims SET status = 'done' WHERE id = ?", (claim,))
            conn.execute("UPDATE tasks SET completed = CASE WHEN (SELECT COUNT(*) FROM task_answers a "
                         "WHERE a.task_seq = tasks.seq) >= ? THEN 1 ELSE 0 END WHERE seq = ?", (store.k, seq))
            return self._answer(conn, answer_id)

    def skip(self, labeler: str, task_id: str) -> None:
        """Give the task back: others may answer it; this labeler does not get it again."""
        with self.store.write() as conn:
            n = conn.execute("UPDATE task_claims SET status = 'skipped', expires_at = ? WHERE labeler = ? "
                             "AND status = 'open' AND task_seq = (SELECT seq FROM tasks WHERE task_id = ?)",
                             (time.time(), labeler, task_id)).rowcount
        if not n:
            raise NotAssignedError(f"task {task_id!r} is not open for {labeler!r}; nothing to skip.")

    # -- reading ----------------------------------------------------------------------------------

    _ANSWER = ("SELECT a.id, t.task_id, t.kind, a.labeler, a.answer, a.rationale, a.seconds, a.created_at "
               "FROM task_answers a JOIN tasks t ON t.seq = a.task_seq")

    def _answer(self, conn, answer_id: int) -> Answer:
        return _as_answer(conn.execute(self._ANSWER + " WHERE a.id = ?", (answer_id,)).fetchone())

    def answers(self, kind: str | None = None) -> list[Answer]:
        rows = self.store.read(self._ANSWER + " WHERE (:kind IS NULL OR t.kind = :kind) ORDER BY a.id",
                               {"kind": kind})
        return [_as_answer(r) for r in rows]

    def tasks(self, kind: str) -> list[tuple[str, list[Message], list[list[Message]]]]:
        """(task_id, prompt, responses in stored order) of every task of `kind`."""
        rows = self.store.read("SELECT t.task_id, p.messages, t.responses FROM tasks t JOIN prompts p "
                               "ON p.id = t.prompt_id WHERE t.kind = ? ORDER BY t.seq", (kind,))
        texts = dict(self.store.read("SELECT id, messages FROM responses WHERE prompt_id IN "
                                     "(SELECT prompt_id FROM tasks WHERE kind = ?)", (kind,)))
        return [(task_id, json.loads(prompt), [json.loads(texts[i]) for i in json.loads(ids)])
                for task_id, prompt, ids in rows]

    def counts(self, kind: str) -> dict[str, int]:
        """Answers per task of `kind`."""
        return dict(self.store.read("SELECT t.task_id, (SELECT COUNT(*) FROM task_answers a WHERE "
                                    "a.task_seq = t.seq) FROM tasks t WHERE t.kind = ?", (kind,)))


def _as_answer(row) -> Answer:
    answer = row[4] if row[2] == "rating" else json.loads(row[4])
    return Answer(row[0], row[1], row[2], row[3], answer, row[5], row[6], row[7])


def _assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def _distinct(candidates) -> list:
    return [c for i, c in enumerate(candidates)
            if c.content.strip() and all(c.content != d.content for d in candidates[:i])]
