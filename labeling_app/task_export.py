"""Export and agreement of the rating and ranking tasks (`labeling_app.tasks`), beside the pairs' export:

    DIR/rankings.jsonl        every live ranking: prompt, responses (stored order), ranks, labeler
    DIR/ranking_pairs/        a 🤗 DatasetDict of the rankings' pairwise preferences: "train" = each
                              ranking's C(K, 2) strict pairs (TRL's RewardTrainer and DPOTrainer take it
                              unchanged), "ties" = its tied pairs; `ranking_pairs.jsonl` holds both
    DIR/ratings.jsonl         every live rating: prompt, response, good / bad, labeler
    DIR/kto/                  a 🤗 Dataset in TRL's unpaired format (`prompt`, `completion`, `label`):
                              one row per rated response, its majority rating (an even split is left out)

Agreement: Krippendorff's alpha, nominal for ratings, ordinal for rankings (each response of a task a
unit, its rank the value). Gold tasks (a known answer) train nothing and measure each labeler: a rating's
gold accuracy is the share of matching ratings; a ranking's, the share of the gold's strictly ordered
response pairs that the labeler put in the same order.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

from foundation.records import PreferenceRecord, to_hf_dataset, write_json_lines, write_jsonl

__all__ = ["export_tasks", "task_stats", "ranking_records", "gold_agreement",
           "format_task_stats"]


def ranking_records(tasks: dict, answers) -> list[PreferenceRecord]:
    """Every ranking's pairs, better first; equal ranks give a record flagged `tie`. `tasks`: task id ->
    (prompt, responses), as `_tasks` reads them."""
    records = []
    for answer in answers:
        prompt, responses = tasks[answer.task_id]
        for i, j in combinations(range(len(responses)), 2):
            better, worse = (i, j) if answer.answer[i] <= answer.answer[j] else (j, i)
            records.append(PreferenceRecord(
                prompt=prompt, chosen=responses[better], rejected=responses[worse],
                tie=answer.answer[i] == answer.answer[j], labeler=answer.labeler,
                pair_id=f"{answer.task_id}:{better}>{worse}", source="ranking"))
    return records


def _kto_rows(tasks: dict, answers) -> tuple[list[dict], int]:
    """One unpaired row per rated response (majority rating); and how many even splits were left out."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for answer in answers:
        votes[answer.task_id][answer.answer] += 1
    rows, split = [], 0
    for task_id, count in votes.items():
        if count["good"] == count["bad"]:
            split += 1
            continue
        prompt, (response,) = tasks[task_id]
        rows.append({"prompt": prompt, "completion": response, "label": count["good"] > count["bad"]})
    return rows, split


def _tasks(store, kind: str) -> dict:
    return {task_id: (prompt, responses) for task_id, prompt, responses in store.tasks.tasks(kind)}


def export_tasks(store, out_dir: str | Path) -> dict[str, int]:
    """Write the rating and ranking exports (see the module doc) where there are answers; their counts."""
    from datasets import Dataset, DatasetDict

    out = Path(out_dir)
    answers = {kind: store.tasks.answers(kind) for kind in ("rating", "ranking")}
    counts = {}
    if answers["ranking"]:
        tasks = _tasks(store, "ranking")
        write_json_lines(({"task_id": a.task_id, "prompt": tasks[a.task_id][0],
                           "responses": tasks[a.task_id][1], "ranks": a.answer, "labeler": a.labeler,
                           "rationale": a.rationale} for a in answers["ranking"]), out / "rankings.jsonl")
        records = ranking_records(tasks, answers["ranking"])
        write_jsonl(records, out / "ranking_pairs.jsonl")
        DatasetDict({"train": to_hf_dataset([r for r in records if not r.tie]),
                     "ties": to_hf_dataset([r for r in records if r.tie])}).save_to_disk(
            str(out / "ranking_pairs"), num_shards={"train": 1, "ties": 1})
        counts.update(rankings=len(answers["ranking"]), ranking_pairs=sum(not r.tie for r in records),
                      ranking_ties=sum(r.tie for r in records))
    if answers["rating"]:
        tasks = _tasks(store, "rating")
        write_json_lines(({"task_id": a.task_id, "prompt": tasks[a.task_id][0],
                           "response": tasks[a.task_id][1][0], "rating": a.answer, "labeler": a.labeler,
                           "rationale": a.rationale} for a in answers["rating"]), out / "ratings.jsonl")
        rows, split = _kto_rows(tasks, answers["rating"])
        Dataset.from_list(rows).save_to_disk(str(out / "kto"), num_shards=1)
        counts.update(ratings=len(answers["rating"]), kto_rows=len(rows), kto_even_splits=split)
    if counts:
        (out / "tasks.json").write_text(json.dumps({**counts, **_stats(answers)}, indent=2))
    return counts


def task_stats(store) -> dict:
    """Answers per kind, Krippendorff's alpha per kind (nominal ratings, ordinal ranks) and each labeler's
    gold accuracy per kind (where there are gold answers)."""
    out = _stats({kind: store.tasks.answers(kind) for kind in ("rating", "ranking")})
    for kind in ("rating", "ranking"):
        hits: dict[str, list[float]] = defaultdict(list)
        for a in store.tasks.answers(kind, gold=True):
            if a.gold is not None:
                hits[a.labeler].append(gold_agreement(a.answer, a.gold))
        out[f"{kind}_gold_accuracy"] = {name: round(sum(h) / len(h), 4) for name, h in sorted(hits.items())}
    return out


def format_task_stats(stats: dict) -> str:
    """The ratings' and rankings' figures as terminal lines (nothing for a kind without answers)."""
    lines = []
    for kind in ("rating", "ranking"):
        gold = stats[f"{kind}_gold_accuracy"]
        if stats[f"{kind}_answers"] or gold:
            level = "ordinal" if kind == "ranking" else "nominal"
            alpha = stats[f"{kind}_alpha"]
            lines.append(f"{kind} answers {stats[f'{kind}_answers']}, Krippendorff's alpha ({level}) "
                         f"{'n/a' if alpha is None else alpha}")
        if gold:
            shares = ", ".join(f"{name} {acc}" for name, acc in gold.items())
            lines.append(f"  {kind} gold accuracy: {shares}")
    return "".join("\n" + line for line in lines)


def gold_agreement(answer: str | list[int], gold: str | list[int]) -> float:
    """1 or 0 for a rating; for ranks, the share of gold's strictly ordered pairs ordered the same way."""
    if isinstance(gold, str):
        return float(answer == gold)
    strict = [(i, j) for i, j in combinations(range(len(gold)), 2) if gold[i] != gold[j]]
    if not strict:
        return float(answer == gold)
    return sum((answer[i] < answer[j]) == (gold[i] < gold[j]) and answer[i] != answer[j]
               for i, j in strict) / len(strict)


def _stats(answers: dict) -> dict[str, float | int | None]:
    out = {}
    for kind, given in answers.items():
        out[f"{kind}_answers"] = len(given)
        out[f"{kind}_alpha"] = _alpha(given, kind)
    return out


def _alpha(answers, kind: str) -> float | None:
    import krippendorff
    import numpy as np

    by_task = defaultdict(list)
    for a in answers:
        by_task[a.task_id].append(a)
    multi = [group for group in by_task.values() if len(group) >= 2]
    if not multi:
        return None
    labelers = sorted({a.labeler for group in multi for a in group})
    row = {name: i for i, name in enumerate(labelers)}
    units = [(j, k) for j, group in enumerate(multi)
             for k in range(1 if kind == "rating" else len(group[0].answer))]
    data = np.full((len(labelers), len(units)), np.nan)
    for col, (j, k) in enumerate(units):
        for a in multi[j]:
            data[row[a.labeler], col] = (a.answer == "good") if kind == "rating" else a.answer[k]
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return 1.0
    level = "nominal" if kind == "rating" else "ordinal"
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
