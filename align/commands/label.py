"""`align label serve|add-user|import|export|stats|simulate`: the labeling app from the terminal.

Every subcommand takes `--store URL` (default sqlite:///labels.db).
"""

from __future__ import annotations

import getpass
import json
import sys

from align.cli import ArgumentParser

DEFAULT_STORE = "sqlite:///labels.db"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="align label", description="Collect human preference labels.")
    sub = parser.add_subparsers(dest="action", required=True)

    def command(name: str, help: str) -> ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--store", default=DEFAULT_STORE, help=f"Label store URL (default {DEFAULT_STORE}).")
        return p

    p = command("serve", "Serve the labeling app (log in with accounts made by add-user).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--config", help="App YAML (AppConfig: k, gold_rate, guidelines, title, ...).")

    p = command("add-user", "Create a labeler or admin account; the password comes from a prompt or stdin.")
    p.add_argument("name")
    p.add_argument("--role", choices=["labeler", "admin"], default="labeler")

    p = command("import", "Add pairs to label from a preference file or a candidates JSONL.")
    p.add_argument("file")
    p.add_argument("--format", choices=["auto", "hh", "kway", "records", "candidates", "label-studio"],
                   default="auto", help="label-studio: a Label Studio JSON export of the pairwise template, "
                                        "its pairs with their labels (annotator, ties, lead time).")
    p.add_argument("--gold", action="store_true",
                   help="The file's preferences are known answers (gold pairs).")
    p.add_argument("--batch", help="Tag the pairs (e.g. round-2); serve and export can select a batch.")
    p.add_argument("--as", dest="kind", choices=["pairs", "rating", "ranking"], default="pairs",
                   help="What to make: pairs (default); rating tasks (one response each, good/bad, for KTO); "
                        "ranking tasks (K >= 3 responses per prompt, ranked; InstructGPT).")
    p.add_argument("--pairs_per_prompt", "--pairs-per-prompt", type=int,
                   help="Candidates: at most this many pairs per prompt (default: every two responses).")
    p.add_argument("--skip_invalid", "--skip-invalid", action="store_true",
                   help="Skip malformed rows (counted) instead of stopping at the first.")

    p = command("export", "Aggregate the labels into a TRL-ready dataset (+ JSONL and a dataset card).")
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument("--min_labels", "--min-labels", type=int, default=1)
    p.add_argument("--min_agreement", "--min-agreement", type=float, default=0.0,
                   help="Minimum share of labels agreeing with the majority (0-1).")
    p.add_argument("--batch")
    p.add_argument("--include_evaluation", "--include-evaluation", action="store_true",
                   help="Also export the loop's evaluation batches (blind comparisons of policies; left "
                        "out by default: they judge models and must not train one).")
    p.add_argument("--format", choices=["dataset", "label-studio"], default="dataset",
                   help="dataset: the labels, TRL-ready; label-studio: the pairs as tasks for Label Studio's "
                        "pairwise template (OUT/tasks.json and the template, OUT/labeling-config.xml).")

    p = command("settings", "Show what the store promises (k, gold_rate), or change it for every replica.")
    p.add_argument("--k", type=int, help="Labels per pair, from distinct labelers.")
    p.add_argument("--gold_rate", "--gold-rate", type=float,
                   help="Share of queue items drawn from gold pairs.")

    p = command("unlock", "Lift the lockout of an account locked after repeated wrong passwords.")
    p.add_argument("name", nargs="?", help="The account; without it, list the locked accounts.")

    p = command("stats", "Labels, agreement (Krippendorff's alpha), gold accuracy, per labeler and per day.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.add_argument("--batch")

    p = command("simulate", "Simulated labelers labeling through a running app's API.")
    p.add_argument("--url", required=True, help="The app's URL, e.g. http://127.0.0.1:7860")
    p.add_argument("--labelers", type=int, default=4)
    p.add_argument("--judge", default="vader",
                   help="vader, module:function (judge(prompt, a, b) -> (choice, strength)), or "
                        "reward:PATH (a reward model saved by `align reward train`).")
    p.add_argument("--temperature", type=float, default=0.1, help="Bradley-Terry noise of the vader judge.")
    p.add_argument("--duration", type=float,
                   help="Stop after this many seconds (default: when the queue is empty).")
    p.add_argument("--max_labels", "--max-labels", type=int)
    p.add_argument("--password", default="simulated",
                   help="Password of the simulated accounts sim-01..sim-N; "
                        "missing accounts are created in --store with it.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", choices=["pairs", "rating", "ranking"], default="pairs",
                   help="Task kind to label: pairs; rating (a rater: vader or module:function, against "
                        "--threshold); ranking (the pairwise judge in a round robin).")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="Ratings: good above this score (VADER compound, or a rule judge's score).")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return {"serve": serve, "add-user": add_user, "import": import_pairs, "export": export, "stats": stats,
            "simulate": simulate, "settings": settings, "unlock": unlock}[args.action](args)


def _store(args, **kwargs):
    from labeling_app.store import LabelStore

    return LabelStore(args.store, **kwargs)


def serve(args) -> int:
    from foundation.recipe import load_config
    from labeling_app.app import build_app, launch_options
    from labeling_app.config import AppConfig

    config = load_config(AppConfig, args.config)
    store = _store(args, k=config.k, gold_rate=config.gold_rate, claim_timeout=config.claim_timeout,
                   max_text_chars=config.max_text_chars)
    if not store.accounts.labelers():
        print(f"align label serve: warning: {args.store} has no accounts yet; add one with "
              f"`align label add-user NAME --role admin --store {args.store}`.", file=sys.stderr)
    app = build_app(store, config)
    print(f"align label serve: {args.store} (k = {store.k}); open http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, **launch_options(store, config))
    return 0


def settings(args) -> int:
    """The one deliberate way to change what a store promises; running replicas read the new values."""
    store = _store(args, k=args.k, gold_rate=args.gold_rate, change_settings=True)
    changed = " (changed)" if args.k is not None or args.gold_rate is not None else ""
    print(f"{args.store}: k = {store.k}, gold_rate = {store.gold_rate:g}{changed}")
    return 0


def unlock(args) -> int:
    import time

    store = _store(args)
    if args.name is None:
        locked = store.accounts.lockouts()
        for name, _, until, reason in locked:
            print(f"{name}: locked for {max(0, until - time.time()) / 60:.0f} more minutes ({reason})")
        print(f"{len(locked)} account(s) locked in {args.store}")
        return 0
    if store.accounts.unlock(args.name):
        print(f"unlocked {args.name!r} in {args.store}")
        return 0
    print(f"align label unlock: {args.name!r} is not locked in {args.store}.", file=sys.stderr)
    return 1


def add_user(args) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("align label add-user: the passwords differ; nothing stored.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    _store(args).accounts.add_labeler(args.name, password, args.role)
    print(f"added {args.role} {args.name!r} to {args.store}")
    return 0


def import_pairs(args) -> int:
    """Read the whole file first (a bad file stores nothing), then add its pairs in one transaction."""
    from pathlib import Path

    from foundation.errors import DataError

    if not Path(args.file).is_file():
        raise DataError(f"{args.file}: no such file.")
    if args.kind != "pairs":
        return import_tasks(args)
    if args.format == "label-studio":
        return import_label_studio(args)
    skipped = 0
    if args.format == "candidates" or (args.format == "auto" and _looks_like_candidates(args.file)):
        from foundation.candidates import read_candidates

        sets = read_candidates(args.file)
        if not sets:
            raise DataError(f"{args.file}: no candidate sets in the file (it is empty); nothing imported.")
        added, present = _store(args).add_candidates(sets, batch=args.batch,
                                                     pairs_per_prompt=args.pairs_per_prompt)
    else:
        from foundation.readers import read_preferences

        data = read_preferences(args.file, args.format, skip_invalid=args.skip_invalid)
        skipped = sum(data.skipped.values())
        if not data.records:
            why = f"all {skipped} rows were malformed and skipped" if skipped else "the file holds no rows"
            raise DataError(f"{args.file}: no pairs to import ({why}); nothing imported.")
        added, present = _store(args).add_records(data.records, gold=args.gold, batch=args.batch)
    kind = "gold pairs" if args.gold else "pairs"
    print(f"imported {added} {kind} from {args.file} into {args.store} ({present} already there"
          f"{f', {skipped} malformed rows skipped' if skipped else ''})")
    return 0


def import_label_studio(args) -> int:
    """A Label Studio export: its pairs (ours again where the task carries our pair id), then its labels,
    each turned to the stored order of its pair."""
    from labeling_app.label_studio import read_export
    from labeling_app.store import pair_key

    items = read_export(args.file)
    store = _store(args)
    known = {p.pair_id for p in store.pairs(include_evaluation=True)}
    new = [it["pair"] for it in items if it["pair_id"] not in known]
    added, present = store.add_pairs(new, batch=args.batch) if new else (0, 0)
    stored = {p.pair_id: p for p in store.pairs(include_evaluation=True)}
    labels = []
    for it in items:
        pair = it["pair"]
        pair_id = it["pair_id"] if it["pair_id"] in known else pair_key(pair["prompt"], pair["response_a"],
                                                                       pair["response_b"])
        flipped = stored[pair_id].response_a[-1]["content"] != pair["response_a"][-1]["content"]
        swap = {"A": "B", "B": "A"} if flipped else {}
        labels += [{**lab, "pair_id": pair_id, "choice": swap.get(lab["choice"], lab["choice"])}
                   for lab in it["labels"]]
    got, again = store.import_labels(labels)
    print(f"imported {added} pairs ({len(items) - added} already there) and {got} labels ({again} already "
          f"there) from {args.file} into {args.store}")
    return 0


def import_tasks(args) -> int:
    """Rating or ranking tasks from a candidates file, or from preference data (each prompt's distinct
    responses: a K-way file's K, a pair file's two)."""
    from foundation.errors import DataError
    from labeling_app.errors import LabelingError

    sets = _candidate_sets(args)
    store = _store(args)
    make = store.tasks.add_ratings if args.kind == "rating" else store.tasks.add_rankings
    try:
        added, present = make(sets, batch=args.batch)
    except LabelingError as e:
        raise DataError(f"{args.file}: {e} Nothing imported.") from None
    print(f"imported {added} {args.kind} tasks from {args.file} into {args.store} ({present} already there)")
    return 0


def _candidate_sets(args) -> list:
    from foundation.candidates import Candidate, CandidateSet, read_candidates
    from foundation.errors import DataError
    from labeling_app.pairs import canonical_json

    if args.format == "candidates" or (args.format == "auto" and _looks_like_candidates(args.file)):
        sets = read_candidates(args.file)
    else:
        from foundation.readers import read_preferences

        groups: dict[str, CandidateSet] = {}
        for r in read_preferences(args.file, args.format, skip_invalid=args.skip_invalid).records:
            group = groups.setdefault(canonical_json(r.prompt), CandidateSet(f"p{len(groups)}", r.prompt, []))
            for side in (r.chosen, r.rejected):
                text = side[-1]["content"]
                if all(c.content != text for c in group.responses):
                    group.responses.append(Candidate(text))
        sets = list(groups.values())
    if not sets:
        raise DataError(f"{args.file}: no prompts with responses in the file; nothing imported.")
    return sets


def _looks_like_candidates(path: str) -> bool:
    from foundation.records import first_json_row

    row = first_json_row(path) if path.endswith(".jsonl") else None
    return isinstance(row, dict) and "responses" in row


def export(args) -> int:
    if args.format == "label-studio":
        return export_label_studio(args)
    from labeling_app.export import export_dataset

    print(export_dataset(_store(args), args.out, min_labels=args.min_labels, min_agreement=args.min_agreement,
                         batch=args.batch, include_evaluation=args.include_evaluation))
    return 0


def export_label_studio(args) -> int:
    from pathlib import Path

    from labeling_app.label_studio import TEMPLATE, to_tasks

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = to_tasks(_store(args).pairs(batch=args.batch, include_gold=False,
                                        include_evaluation=args.include_evaluation))
    (out / "tasks.json").write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "labeling-config.xml").write_text(TEMPLATE + "\n", encoding="utf-8")
    print(f"{len(tasks)} tasks in {out / 'tasks.json'} for Label Studio's pairwise template "
          f"({out / 'labeling-config.xml'}); its JSON export comes back with "
          "`align label import FILE --format label-studio`")
    return 0


def stats(args) -> int:
    from labeling_app.quality import format_stats, label_stats
    from labeling_app.task_export import format_task_stats, task_stats

    store = _store(args)
    figures = label_stats(store, batch=args.batch)
    tasks = task_stats(store)                        # ratings and rankings: answers, alpha, gold accuracy
    if any(tasks[f"{kind}_answers"] or tasks[f"{kind}_gold_accuracy"] for kind in ("rating", "ranking")):
        figures["tasks"] = tasks
    text = format_stats(figures) + format_task_stats(tasks)
    print(json.dumps(figures, indent=2) if args.json else text)
    return 0


def simulate(args) -> int:
    from align.judges import load_judge
    from foundation.judges import load_rater
    from labeling_app.client import simulate as run
    from labeling_app.client import simulated_accounts

    judge = load_judge(args.judge, temperature=args.temperature)
    rater = load_rater(args.judge, threshold=args.threshold) if args.kind == "rating" else None
    names = simulated_accounts(args.labelers)
    store = _store(args)
    existing = {name for name, _ in store.accounts.labelers()}
    for name in names:
        if name not in existing:
            store.accounts.add_labeler(name, args.password)
    from tqdm import tqdm

    with tqdm(desc="labels", unit="label", total=args.max_labels) as bar:
        result = run(args.url, [(n, args.password) for n in names], judge, duration=args.duration,
                     max_labels=args.max_labels, seed=args.seed, kind=args.kind, rater=rater,
                     progress=lambda n: bar.update(n - bar.n))
    summary = result.summary()
    print(json.dumps(summary))
    for error in result.errors[:5]:
        print(f"  error: {error}", file=sys.stderr)
    return 0 if not result.errors or result.acknowledged else 1
