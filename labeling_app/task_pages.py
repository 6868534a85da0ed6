"""The labeler's pages for ratings and rankings (beside the pairs page), tabs that a labeler sees when the
store holds tasks of that kind (checked at each page load: tasks imported while the app runs show).
Keyboard first, as the pairs page: ratings `g` good, `b` bad, `Enter` submits, `s` skips, `u` undoes the
last rating; rankings: type the ranks in the order shown (`2 1 3`, ties as equal numbers: `1 1 2`) and
press `Enter`, or pick each response's rank with the mouse; `s` and `u` as for ratings.

The handlers are plain functions of (store, config, user, inputs) that tests call directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import gradio as gr

from labeling_app.config import AppConfig
from labeling_app.errors import LabelingError
from labeling_app.store import LabelStore
from labeling_app.tasks import MAX_RANKED
from labeling_app.ui import escape_markdown, guarded, text_of, turn, user_of

__all__ = ["TaskView", "show_next_task", "record_rating", "record_ranking", "parse_ranks", "skip_task",
           "undo_task", "task_tabs", "wire_task_events", "MAX_RESPONSES"]

MAX_RESPONSES = MAX_RANKED            # ranking slots on the page (A..I)
LETTERS = "ABCDEFGHI"


@dataclass
class TaskView:
    """What a task page shows; `task_id` None means nothing of this kind is left for the labeler."""

    kind: str
    task_id: str | None
    conversation: list[dict]
    responses: list[str]
    status: str


def show_next_task(store: LabelStore, config: AppConfig, user: str, kind: str, note: str = "") -> TaskView:

    task = store.tasks.next(user, kind, batch=config.batch)
    done = sum(a.labeler == user for a in store.tasks.answers(kind))
    status = f"{note + ' · ' if note else ''}{kind.capitalize()}s done: **{done}**"
    if task is None:
        return TaskView(kind, None, [], [], f"🎉 No {kind} tasks left for you right now. {status}")
    return TaskView(kind, task.task_id, [turn(m) for m in task.prompt],
                    [escape_markdown(text_of(r)) for r in task.responses], status)


def record_rating(store: LabelStore, config: AppConfig, user: str, task_id: str | None,
                  rating: str | None, rationale: str = "") -> TaskView:
    if not task_id:
        raise LabelingError("there is no response on screen to rate.")
    if rating not in ("good", "bad"):
        raise LabelingError("choose good (g) or bad (b) first.")
    answer = store.tasks.submit_rating(user, task_id, rating, rationale or "")
    return show_next_task(store, config, user, "rating", note=f"Saved rating #{answer.id}")


def parse_ranks(text: str | None, picked: list, k: int) -> list[int]:
    """Ranks typed as `2 1 3` (or `2,1,3`), else the ranks picked per response; a refusal says how."""
    if text and text.strip():
        parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
        if not all(p.isdigit() for p in parts):
            raise LabelingError(f"type one rank per response, in the order shown (e.g. "
                                f"{' '.join(str(i + 1) for i in range(k))}), got {text!r}.")
        return [int(p) for p in parts]
    if any(p in (None, "") for p in picked[:k]):
        raise LabelingError(f"give every response a rank (1 = best; equal ranks are a tie): type them, e.g. "
                            f"{' '.join(str(i + 1) for i in range(k))}, or pick them below each response.")
    return [int(p) for p in picked[:k]]


def record_ranking(store: LabelStore, config: AppConfig, user: str, task_id: str | None, ranks: list[int],
                   rationale: str = "") -> TaskView:
    if not task_id:
        raise LabelingError("there are no responses on screen to rank.")
    answer = store.tasks.submit_ranking(user, task_id, ranks, rationale or "")
    return show_next_task(store, config, user, "ranking", note=f"Saved ranking #{answer.id}")


def skip_task(store: LabelStore, config: AppConfig, user: str, kind: str, task_id: str | None) -> TaskView:
    if task_id:
        store.tasks.skip(user, task_id, kind)
    return show_next_task(store, config, user, kind, note="Skipped")


def undo_task(store: LabelStore, config: AppConfig, user: str, kind: str) -> TaskView:
    """Retract the labeler's last answer of `kind`; its task comes back first."""
    answer = store.tasks.undo(user, kind)
    return show_next_task(store, config, user, kind, note="Undone: answer it again" if answer else
                          "Nothing to undo")


# -- layout -------------------------------------------------------------------------------------------

def _conversation(elem_id: str):
    return gr.Chatbot(label="Conversation", elem_id=elem_id, height=360, max_height=640, resizable=True,
                      autoscroll=False, sanitize_html=True, allow_tags=False, latex_delimiters=[], buttons=[],
                      feedback_options=None, group_consecutive_messages=False)


def rating_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Tab("Rate", id="rate", elem_id="rate-tab", visible=False) as ui.tab:    # states inside it
        ui.task_id = gr.State(None)
        gr.Markdown("**Keys:** `g` good · `b` bad · `Enter` submit · `u` undo · `s` skip")
        ui.status = gr.Markdown(elem_id="rate-status")
        ui.conversation = _conversation("rate-conversation")
        ui.response = gr.Markdown(elem_id="rate-response", sanitize_html=True, latex_delimiters=[])
        ui.rating = gr.Radio([("Good (g)", "good"), ("Bad (b)", "bad")], label="Is this response good?",
                             elem_id="rating")
        ui.rationale = gr.Textbox(label="Rationale (optional)", lines=2, elem_id="rate-rationale")
        with gr.Row():
            ui.submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rate-submit-btn")
            ui.undo = gr.Button("Undo last (u)", elem_id="rate-undo-btn")
            ui.skip = gr.Button("Skip (s)", elem_id="rate-skip-btn")
    ui.outputs = [ui.task_id, ui.conversation, ui.response, ui.status, ui.rating, ui.rationale]
    return ui


def ranking_tab() -> SimpleNamespace:
    ui = SimpleNamespace(slots=[], picks=[])
    with gr.Tab("Rank", id="rank", elem_id="rank-tab", visible=False) as ui.tab:
        ui.task_id, ui.k = gr.State(None), gr.State(0)
        gr.Markdown("**Keys:** type the ranks in the order shown (`2 1 3`; a tie: `1 1 2`) · `Enter` "
                    "submit · `u` undo · `s` skip (outside the box)")
        ui.status = gr.Markdown(elem_id="rank-status")
        ui.conversation = _conversation("rank-conversation")
        for i in range(MAX_RESPONSES):
            with gr.Column(visible=False) as column:
                gr.Markdown(f"### Response {LETTERS[i]}")
                text = gr.Markdown(elem_id=f"rank-response-{i}", sanitize_html=True, latex_delimiters=[])
                pick = gr.Dropdown([str(r) for r in range(1, MAX_RESPONSES + 1)], label="Rank", value=None,
                                   elem_id=f"rank-pick-{i}")
            ui.slots.append((column, text))
            ui.picks.append(pick)
        ui.ranks = gr.Textbox(label="Ranks in the order shown (1 = best)", elem_id="rank-text")
        ui.rationale = gr.Textbox(label="Rationale (optional)", lines=2, elem_id="rank-rationale")
        with gr.Row():
            ui.submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rank-submit-btn")
            ui.undo = gr.Button("Undo last (u)", elem_id="rank-undo-btn")
            ui.skip = gr.Button("Skip (s)", elem_id="rank-skip-btn")
    ui.outputs = [ui.task_id, ui.k, ui.conversation, ui.status, ui.ranks, ui.rationale,
                  *[c for c, _ in ui.slots], *[t for _, t in ui.slots], *ui.picks]
    return ui


def task_tabs() -> tuple[SimpleNamespace, SimpleNamespace]:
    """The Rate and Rank tabs, hidden until a page load finds tasks of their kind. (Their states live
    inside each tab: a component directly under `gr.Tabs` relabels the tab bar in Gradio 6.31.)"""
    return rating_tab(), ranking_tab()


def _rating_page(view: TaskView):
    return (view.task_id, view.conversation, view.responses[0] if view.responses else "", view.status,
            gr.update(value=None), gr.update(value=""))


def _ranking_page(view: TaskView):
    k = len(view.responses)
    return (view.task_id, k, view.conversation, view.status, gr.update(value=""), gr.update(value=""),
            *[gr.update(visible=i < k) for i in range(MAX_RESPONSES)],
            *[view.responses[i] if i < k else "" for i in range(MAX_RESPONSES)],
            *[gr.update(value=None, choices=[str(r) for r in range(1, max(k, 1) + 1)])
              for _ in range(MAX_RESPONSES)])


def wire_task_events(app, store: LabelStore, config: AppConfig, rate: SimpleNamespace,
                     rank: SimpleNamespace) -> None:

    quick = {"concurrency_limit": None, "api_visibility": "undocumented"}

    def loader(kind: str, page):
        def on_load(request: gr.Request):
            """The tab shows for a labeler when the store holds tasks of its kind, with the next one; an
            admin sees no tab and claims nothing."""
            user = user_of(request)
            if store.accounts.role(user) == "admin" or not store.tasks.counts(kind):
                return gr.update(visible=False), *page(TaskView(kind, None, [], [], ""))
            return gr.update(visible=True), *page(guarded(lambda: show_next_task(store, config, user, kind)))
        return on_load

    def on_rate(task_id: Optional[str], rating: Optional[str], rationale: Optional[str], request: gr.Request):
        return _rating_page(guarded(lambda: record_rating(store, config, user_of(request), task_id, rating,
                                                           rationale)))

    def on_rate_skip(task_id: Optional[str], request: gr.Request):
        return _rating_page(guarded(lambda: skip_task(store, config, user_of(request), "rating", task_id)))

    # Gradio finds the request among named parameters only: one per rank slot (MAX_RESPONSES = 9)
    def on_rank(task_id: Optional[str], k: int, text: Optional[str], rationale: Optional[str], p0, p1, p2, p3,
                p4, p5, p6, p7, p8, request: gr.Request):
        picks = [p0, p1, p2, p3, p4, p5, p6, p7, p8]
        return _ranking_page(guarded(lambda: record_ranking(
            store, config, user_of(request), task_id, parse_ranks(text, picks, k), rationale)))

    def on_rank_skip(task_id: Optional[str], request: gr.Request):
        user = user_of(request)
        return _ranking_page(guarded(lambda: skip_task(store, config, user, "ranking", task_id)))

    def on_rate_undo(request: gr.Request):
        return _rating_page(guarded(lambda: undo_task(store, config, user_of(request), "rating")))

    def on_rank_undo(request: gr.Request):
        return _ranking_page(guarded(lambda: undo_task(store, config, user_of(request), "ranking")))

    app.load(loader("rating", _rating_page), None, [rate.tab, *rate.outputs], **quick)
    rate.submit.click(on_rate, [rate.task_id, rate.rating, rate.rationale], rate.outputs, **quick)
    rate.skip.click(on_rate_skip, [rate.task_id], rate.outputs, **quick)
    rate.undo.click(on_rate_undo, None, rate.outputs, **quick)
    app.load(loader("ranking", _ranking_page), None, [rank.tab, *rank.outputs], **quick)
    rank_inputs = [rank.task_id, rank.k, rank.ranks, rank.rationale, *rank.picks]
    rank.submit.click(on_rank, rank_inputs, rank.outputs, **quick)
    rank.ranks.submit(on_rank, rank_inputs, rank.outputs, **quick)
    rank.skip.click(on_rank_skip, [rank.task_id], rank.outputs, **quick)
    rank.undo.click(on_rank_undo, None, rank.outputs, **quick)
