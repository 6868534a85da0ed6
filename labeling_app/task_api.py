"""The named endpoints of the rating and ranking tasks (beside `/next_pair` and `/submit_label`):

- `/next_rating` → `{"task_id", "prompt", "response"}`, or None when none is left;
- `/submit_rating` (`task_id`, `rating`: "good" | "bad", `rationale`, `request_id` optional)
  → `{"answer_id", "task_id", "stored": true}` once committed;
- `/next_ranking` → `{"task_id", "prompt", "responses": [...]}` in the order shown, or None;
- `/submit_ranking` (`task_id`, `ranks`: one integer per response in the order shown, 1 = best,
  equal numbers a tie, `rationale`, `request_id`) → as for ratings."""

from __future__ import annotations

from typing import Optional

import gradio as gr

from labeling_app.config import AppConfig
from labeling_app.store import LabelStore
from labeling_app.ui import guarded, text_of, user_of

__all__ = ["register_task_api", "next_rating_api", "next_ranking_api", "submit_rating_api",
           "submit_ranking_api"]


def next_rating_api(store: LabelStore, config: AppConfig, user: str) -> dict | None:
    task = store.tasks.next(user, "rating", batch=config.batch)
    if task is None:
        return None
    return {"task_id": task.task_id, "prompt": task.prompt, "response": text_of(task.responses[0])}


def next_ranking_api(store: LabelStore, config: AppConfig, user: str) -> dict | None:
    task = store.tasks.next(user, "ranking", batch=config.batch)
    if task is None:
        return None
    return {"task_id": task.task_id, "prompt": task.prompt, "responses": [text_of(r) for r in task.responses]}


def submit_rating_api(store: LabelStore, user: str, task_id: str, rating: str, rationale: str = "",
                      request_id: str | None = None) -> dict:
    answer = store.tasks.submit_rating(user, task_id, rating, rationale, request_id=request_id or None)
    return {"answer_id": answer.id, "task_id": answer.task_id, "stored": True}


def submit_ranking_api(store: LabelStore, user: str, task_id: str, ranks: list, rationale: str = "",
                       request_id: str | None = None) -> dict:
    answer = store.tasks.submit_ranking(user, task_id, ranks, rationale, request_id=request_id or None)
    return {"answer_id": answer.id, "task_id": answer.task_id, "stored": True}


def register_task_api(store: LabelStore, config: AppConfig) -> None:

    async def next_rating(request: gr.Request) -> Optional[dict]:
        """The next response to rate for the signed-in labeler, or None when none is left."""
        return guarded(lambda: next_rating_api(store, config, user_of(request)))

    async def submit_rating(task_id: str, rating: str, rationale: str = "", request_id: Optional[str] = None,
                            request: Optional[gr.Request] = None) -> dict:
        """Store a rating ("good" or "bad"); returns once it is committed."""
        return guarded(lambda: submit_rating_api(store, user_of(request), task_id, rating, rationale,
                                                  request_id))

    async def next_ranking(request: gr.Request) -> Optional[dict]:
        """The next responses to rank for the signed-in labeler, in the order shown, or None."""
        return guarded(lambda: next_ranking_api(store, config, user_of(request)))

    async def submit_ranking(task_id: str, ranks: list, rationale: str = "", request_id: Optional[str] = None,
                             request: Optional[gr.Request] = None) -> dict:
        """Store a ranking: one integer per response in the order shown, 1 = best, equal numbers a tie."""
        return guarded(lambda: submit_ranking_api(store, user_of(request), task_id, ranks, rationale,
                                                   request_id))

    for fn in (next_rating, submit_rating, next_ranking, submit_ranking):
        gr.api(fn, api_name=fn.__name__, queue=False, concurrency_limit=None)
