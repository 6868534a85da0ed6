"""Label Studio's pairwise preference template ("Human Preference collection for RLHF"), both ways: our
pairs as tasks Label Studio imports into that template, and a Label Studio JSON export read back as
pairs with their labels (which side won, ties, the annotator, the time it took).

The template (`TEMPLATE`, the one Label Studio ships, plus an optional tie choice) shows `$prompt` and
two answers, `$answer1` (left, our response A) and `$answer2` (right, B), and stores a `pairwise` result
`{"selected": "left" | "right"}`; a `choices` result "Tie" (or "Equal", "Same") is a tie. Our own pair
id travels in the task's data (`pair_id`), so labels made on our tasks land on the same pairs.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from foundation.errors import DataError
from foundation.records import Message

__all__ = ["TEMPLATE", "to_tasks", "read_export", "annotator_name"]

TEMPLATE = ("""<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Select the better answer"/>
  <Pairwise name="comparison" toName="answer1,answer2" """
            """selectionStyle="background-color: #27ae60; color: white"/>
  <Text name="answer1" value="$answer1"/>
  <Text name="answer2" value="$answer2"/>
  <Choices name="tie" toName="prompt" showInline="true" required="false">
    <Choice value="Tie"/>
  </Choices>
</View>""")

_TIES = {"tie", "equal", "same", "both", "both equal"}


def _text(messages: list[Message]) -> str:
    """A conversation as one text: a single user turn is itself, longer ones name each speaker."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def to_tasks(pairs) -> list[dict]:
    """Label Studio tasks for the template, one per pair (`labeling_app.pairs.Pair`)."""
    return [{"data": {"prompt": _text(p.prompt), "answer1": _text(p.response_a),
                      "answer2": _text(p.response_b), "pair_id": p.pair_id}} for p in pairs]


def annotator_name(completed_by) -> str:
    """Our account name for a Label Studio annotator (an e-mail, a user object or a user id)."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("username") or completed_by.get("id")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(completed_by if completed_by is not None else "unknown"))
    return f"ls-{name}"[:64]


def _choice(result: list[dict], where: str) -> str | None:
    """'A', 'B' or 'tie' from an annotation's results; None when it holds no comparison."""
    choice = None
    for r in result:
        value = r.get("value") or {}
        if r.get("type") == "pairwise" and value.get("selected") in ("left", "right"):
            choice = "A" if value["selected"] == "left" else "B"
        elif r.get("type") == "choices" and {c.lower() for c in value.get("choices", [])} & _TIES:
            return "tie"
        elif r.get("type") == "pairwise":
            raise DataError(f"{where}: a pairwise result selects {value.get('selected')!r}; expected 'left' "
                            "or 'right' (Label Studio's Pairwise tag).")
    return choice


def _timestamp(value) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def read_export(path: str | Path) -> list[dict]:
    """A Label Studio JSON export of the pairwise template: one item per task, `{"pair": add_pairs item,
    "pair_id": ours or None, "labels": [{labeler, choice, seconds, created_at}]}`. Cancelled (skipped)
    annotations and annotations without a comparison are left out. A malformed file raises a DataError
    naming the task."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a Label Studio JSON export ({e}); "
                        "export the project as JSON.") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}.")
    items = []
    for n, task in enumerate(tasks, 1):
        where = f"{path}, task {task.get('id', n) if isinstance(task, dict) else n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                                 for k in ("prompt", "answer1", "answer2")):
            raise DataError(f"{where}: its data needs text fields `prompt`, `answer1` and `answer2` (the "
                            "pairwise template's); found "
                            + (", ".join(sorted(data)) if isinstance(data, dict) else "none"))
        labels = []
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            choice = _choice(annotation.get("result") or [], where)
            if choice is None:
                continue
            labels.append({"labeler": annotator_name(annotation.get("completed_by")), "choice": choice,
                           "seconds": float(annotation.get("lead_time") or 0.0),
                           "created_at": _timestamp(annotation.get("created_at"))})
        items.append({"pair": {"prompt": [{"role": "user", "content": data["prompt"]}],
                               "response_a": [{"role": "assistant", "content": data["answer1"]}],
                               "response_b": [{"role": "assistant", "content": data["answer2"]}],
                               "source": "label-studio", "where": where},
                      "pair_id": data.get("pair_id"), "labels": labels})
    return items
