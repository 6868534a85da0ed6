"""Pairs on the one labeling queue (`labeling_app.queue`): what a pairwise label adds to the queue's rules.

A pair is shown in a random order, its left response as "A" to the labeler; the label is stored in the
pair's own order (`choice` "A" = the pair's response_a) with how much better (`strength` 1-4). A mixin
over the store's queue (`claim`, `answer`, `skip_item`, `retract_last`).
"""

from __future__ import annotations

from labeling_app.pairs import SWAP, Assignment, Label, check_label_input, shown_order_name
from labeling_app.queue import ANSWER_COLUMNS, Shown

__all__ = ["PairQueue", "LABEL_COLUMNS", "as_label"]

LABEL_COLUMNS = ANSWER_COLUMNS + " WHERE i.kind = 'pair'"


def as_label(row) -> Label:
    """A `Label` from an answer's row (`labeling_app.queue.ANSWER_COLUMNS`)."""
    answer_id, pair_id, _, labeler, choice, strength, rationale, order, seconds, created_at, _ = row
    return Label(answer_id, pair_id, labeler, choice, strength, rationale, shown_order_name(order), seconds,
                 created_at)


class PairQueue:
    """Claims, labels, skips and undo of a `LabelStore`'s pairs."""

    def next_assignment(self, labeler: str, *, batch: str | None = None) -> Assignment | None:
        """The labeler's open claim on a pair if any, else a new claim on the next pair (gold at
        `gold_rate`, otherwise the highest priority, then the oldest); None when nothing is left."""
        return self.claim(labeler, "pair", self._assignment, batch=batch)

    @staticmethod
    def _assignment(shown: Shown) -> Assignment:
        left, right = shown.responses
        return Assignment(shown.item_id, shown.prompt, left, right, shown_order_name(shown.order),
                          shown.claimed_at)

    def submit(self, labeler: str, pair_id: str, choice: str, strength: int = 3,
               rationale: str = "", request_id: str | None = None) -> Label:
        """Store a label; `choice` is as shown ("A" = left). Returns once the label is committed.
        A `request_id` (any string the client makes up per label) makes the call idempotent: a retry
        after a lost reply returns the label first stored for it instead of an error."""
        check_label_input(pair_id, choice, strength, rationale, request_id)

        def stored(order: list[int]) -> str:
            return choice if order == [0, 1] else SWAP[choice]

        return as_label(self.answer(labeler, pair_id, "pair", stored, strength=strength,
                                    rationale=rationale or "", request_id=request_id))

    def skip(self, labeler: str, pair_id: str) -> None:
        """Give the pair back: others may label it, and this labeler sees it again once nothing new is
        left for them (the end of their queue)."""
        self.skip_item(labeler, pair_id, "pair")

    def undo(self, labeler: str) -> Label | None:
        """Retract the labeler's last live label and reopen that pair for them; None if there is none."""
        label_id = self.retract_last(labeler, "pair")
        return None if label_id is None else self.label(label_id)
