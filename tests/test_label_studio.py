"""The Label Studio round trip (`labeling_app.label_studio`, `align label import|export --format
label-studio`): our pairs out as tasks of Label Studio's pairwise template, its JSON export back in as
pairs with their labels. The slow test runs a real Label Studio server."""

import json
import subprocess
import sys

import pytest

from align.cli import main
from foundation.records import PreferenceRecord
from labeling_app import LabelStore


def _store(tmp_path) -> tuple[LabelStore, str]:
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    store = LabelStore(url, k=2)
    store.add_records([PreferenceRecord(prompt=[{"role": "user", "content": f"Review the lamp {i}."}],
                                        chosen=[{"role": "assistant", "content": f"Bright and sturdy {i}."}],
                                        rejected=[{"role": "assistant", "content": f"Dim {i}."}])
                       for i in range(3)])
    return store, url


def _annotation(result: list, who, seconds: float = 7.5, cancelled: bool = False) -> dict:
    return {"result": result, "completed_by": who, "lead_time": seconds, "was_cancelled": cancelled,
            "created_at": "2026-12-07T10:00:00.000000Z"}


def _pick(side: str) -> list:
    return [{"type": "pairwise", "from_name": "comparison", "to_name": ["answer1", "answer2"],
             "value": {"selected": side}}]


TIE = [{"type": "choices", "from_name": "tie", "to_name": ["prompt"], "value": {"choices": ["Tie"]}}]


def test_our_tasks_come_back_from_a_label_studio_export_with_their_labels(tmp_path):
    store, url = _store(tmp_path)
    out = tmp_path / "to-ls"
    assert main(["label", "export", "--format", "label-studio", "--out", str(out), "--store", url]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    pairs = store.pairs()
    assert [t["data"]["pair_id"] for t in tasks] == [p.pair_id for p in pairs]
    assert tasks[0]["data"]["answer1"] == pairs[0].response_a[0]["content"]
    assert "<Pairwise" in (out / "labeling-config.xml").read_text()
    # what Label Studio's export holds after labelling: annotations by two people, one skipped
    tasks[0]["annotations"] = [_annotation(_pick("left"), {"email": "ann@example.com"}),
                               _annotation(_pick("right"), 7, seconds=3.0)]
    tasks[1]["annotations"] = [_annotation(TIE, {"email": "ann@example.com"}),
                               _annotation(_pick("left"), 7, cancelled=True)]
    tasks.append({"id": 99, "data": {"prompt": "A new request.", "answer1": "one", "answer2": "two"},
                  "annotations": [_annotation(_pick("right"), {"email": "bob@example.com"})]})
    export = tmp_path / "ls-export.json"
    export.write_text(json.dumps(tasks))
    assert main(["label", "import", str(export), "--format", "label-studio", "--store", url]) == 0
    labels = {(lab.pair_id, lab.labeler): lab for lab in store.labels()}
    assert labels[(pairs[0].pair_id, "ls-ann-example.com")].choice == "A"
    by_id = labels[(pairs[0].pair_id, "ls-7")]
    assert by_id.choice == "B" and by_id.seconds == 3.0
    assert labels[(pairs[1].pair_id, "ls-ann-example.com")].choice == "tie"
    assert (pairs[1].pair_id, "ls-7") not in labels                   # a skipped task is no label
    new = [p for p in store.pairs() if p.prompt[0]["content"] == "A new request."]
    assert len(new) == 1 and store.pairs()[-1].source == "label-studio"
    assert labels[(new[0].pair_id, "ls-bob-example.com")].shown_choice == (
        "B" if new[0].response_b[0]["content"] == "two" else "A")
    assert len(store.labels()) == 4
    assert main(["label", "import", str(export), "--format", "label-studio", "--store", url]) == 0
    assert len(store.labels()) == 4                                    # importing again adds nothing
    assert not store.accounts.authenticate("ls-ann-example.com", "")   # an imported account cannot log in


def test_a_file_that_is_not_a_label_studio_export_is_refused_by_name(tmp_path):
    _, url = _store(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": 4, "data": {"text": "no pairwise fields"}}]))
    done = subprocess.run([sys.executable, "-m", "align.cli", "label", "import", str(bad), "--format",
                           "label-studio", "--store", url], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{bad}, task 4: its data needs text fields `prompt`, `answer1` and `answer2`" in done.stderr


@pytest.mark.slow
def test_a_real_label_studio_server_takes_our_tasks_and_its_export_comes_back(tmp_path):
    """Label Studio itself (its own virtual environment, SQLite, offline, a free port): a project with
    our template, our tasks imported through its API, annotations made through its API, its JSON export
    imported back: the labels equal the annotations."""
    from tests.label_studio_server import LabelStudio

    store, url = _store(tmp_path)
    out = tmp_path / "to-ls"
    assert main(["label", "export", "--format", "label-studio", "--out", str(out), "--store", url]) == 0
    with LabelStudio(tmp_path / "ls-data") as ls:
        project = ls.create_project("align round trip", (out / "labeling-config.xml").read_text())
        ls.import_tasks(project, json.loads((out / "tasks.json").read_text()))
        made = {}
        for task, result in zip(ls.tasks(project), (_pick("left"), _pick("right"), TIE)):
            ls.annotate(task["id"], result, lead_time=4.0)
            made[task["data"]["pair_id"]] = {"left": "A", "right": "B"}.get(
                result[0]["value"].get("selected"), "tie")
        export = tmp_path / "ls-export.json"
        export.write_bytes(ls.export(project))
    assert main(["label", "import", str(export), "--format", "label-studio", "--store", url]) == 0
    got = {lab.pair_id: lab.choice for lab in store.labels()}
    assert got == made and len(made) == 3
    assert all(lab.labeler.startswith("ls-") and lab.seconds == 4.0 for lab in store.labels())
