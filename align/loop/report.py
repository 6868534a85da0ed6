"""The loop's report: one line per stage on the terminal, and after each round `report.md`,
`report.html` and `report.png` (the rounds so far) in the output folder."""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["describe_stage", "write_report", "round_lineage"]

TABLE_HEADER = (
    "| round | labelers' win rate vs initial | wins / ties / losses (labels) | labelers vs previous kept "
    "| oracle judge vs initial | RM win rate vs initial | KL (nats) | length (tokens) | labels so far "
    "| alpha "
    "| previous RM accuracy on this round's fresh labels | same, uncertain / random |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|")


def describe_stage(stage: str, state: dict, keep_worse: bool = False) -> str:
    """What a finished stage of a round did, in one line."""
    if stage == "select":
        s = state["select"]
        return ", ".join(f"{k} {v}" for k, v in s.items() if k != "uncertainty")
    if stage == "label":
        lab = state["labels"]
        return f"{lab['labels']} labels in the store, Krippendorff's alpha {_alpha(lab)}"
    if stage == "reward":
        info = state["reward"]
        fresh = info.get("fresh_accuracy")
        accuracy = f"; previous RM on this round's {fresh['n']} fresh labels: accuracy " \
            f"{_with_interval(fresh['accuracy'], fresh['interval'])}" if fresh else ""
        learnable = _learnability(info.get("learnability"))
        return f"refit on {info['train_records']} records" + accuracy + learnable
    if stage == "evaluate":
        kept = _verdict(state, keep_worse, " (worse: not kept)", " (worse: kept anyway, keep_worse_rounds)")
        return "; ".join(f"vs {k} (round {v['round']}): {_labelers(v['labelers']) if 'labelers' in v else ''}"
                         + (f", oracle judge {_with_interval(v['judge_win_rate'], v['judge_interval'])}"
                            if "judge_win_rate" in v else "")
                         + f", RM {_reward_model(v)}"
                         + (f", KL {_with_interval(v['kl'], v['kl_interval'])}" if v["kl"] is not None
                            else "")
                         for k, v in state["evaluation"].items()) + kept
    if stage == "policy":
        guard = state.get("kl_guard", {})
        if not guard:
            held = ""
        else:
            from align.loop.guards import held_upper

            upper = held_upper(guard)
            measured = f"KL {guard['kl']:.2f} (95% upper {upper:.2f})"
            if guard["scale"] != 1.0:
                trained = guard.get("kl_trained_upper", guard["kl_trained"])
                where = "over" if guard["scale"] < 1.0 else "well within"
                held = (f"; KL {guard['kl_trained']:.2f} (95% upper {trained:.2f}) {where} the budget "
                        f"{guard['budget']:g}: adapter scaled by {guard['scale']:.2f} to {measured}")
            elif upper > guard["budget"]:
                held = f"; {measured} OVER the budget {guard['budget']:g} (no adapter to shrink)"
            else:
                held = f"; {measured} within the budget {guard['budget']:g}"
        return state["policy"] + _start(state) + held
    return "done"


def _learnability(check: dict | None) -> str:
    """"; labels learnable: two-fold accuracy A [lo, hi] over N" and, when not above chance, what the
    round does without them."""
    if not check:
        return ""
    figure = f"two-fold accuracy {_with_interval(check['accuracy'], check['interval'])} over {check['n']}"
    if check["above_chance"]:
        return f"; labels learnable ({figure})"
    return (f"; labels NOT learnable yet ({figure}, not above chance): no reward-model pairs and no "
            "scaling up this round")


def _start(state: dict) -> str:
    """Where round r's policy stage started, when not from the initial policy."""
    start = state.get("start") or ({"round": state["warm_start_from"], "how": "continue"}
                                   if state.get("warm_start_from") else None)
    if not start:
        return ""
    if start["how"] == "stack":
        return f" (stacked on round {start['round']}'s policy; KL held against it)"
    return f" (from round {start['round']}'s adapter)"


def _labelers(lab: dict) -> str:
    """"labelers' win rate W [lo, hi] over N labels (w/t/l, why it stopped)"."""
    w, t, l_ = lab["wins_ties_losses"]
    return (f"labelers' win rate {_with_interval(lab['win_rate'], lab['interval'])} over {lab['labels']} "
            f"labels ({w}/{t}/{l_}, {lab['stopped']})")


def _alpha(labels: dict) -> str:
    alpha = labels["krippendorff_alpha"]
    return "– (no pair has two labels; k: 2 measures it)" if alpha is None else f"{alpha}"


def _reward_model(evaluation: dict) -> str:
    """The reward model's win rate, and the share of labels its Bradley-Terry odds predict."""
    text = _with_interval(evaluation["reward_win_rate"], evaluation["reward_interval"])
    if evaluation.get("reward_expected_interval"):
        odds = _with_interval(evaluation["reward_expected_win_rate"], evaluation["reward_expected_interval"])
        text += f" (its odds {odds})"
    return text


def _with_interval(value: float, interval) -> str:
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.2f}"


def _evaluated_rounds(state: dict) -> list[tuple[int, dict]]:
    return sorted((int(r), s) for r, s in state["rounds"].items() if "evaluation" in s)


def _errorbar(ax, xs, entries: list[dict], key: str, fmt: str, label: str) -> None:
    """Points with their 95% intervals as error bars."""
    ys = [e[key] for e in entries]
    interval_key = "interval" if key == "win_rate" else f"{key.rsplit('_', 2)[0]}_interval"
    intervals = [e.get(interval_key) or (y, y) for e, y in zip(entries, ys)]
    below = [y - i[0] for y, i in zip(ys, intervals)]
    above = [i[1] - y for y, i in zip(ys, intervals)]
    ax.errorbar(xs, ys, yerr=[below, above], fmt=fmt, capsize=3, label=label)


def plot_rounds(rounds: list[tuple[int, dict]], path: Path, kl_budget: float | None = None) -> None:
    """Five panels: the learning curve (labelers' win rate against the labels so far), win rates over the
    rounds, mean reward, KL to the initial policy, label quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r for r, _ in rounds]
    ev = [s["evaluation"] for _, s in rounds]
    fig, axes = plt.subplots(1, 5, figsize=(21, 3.6))
    judged = [(s["labels"]["labels"], e["initial"]["labelers"]) for (_, s), e in zip(rounds, ev)
              if "labelers" in e["initial"]]
    if judged:
        _errorbar(axes[0], [n for n, _ in judged], [lab for _, lab in judged], "win_rate", "o-",
                  "labelers, vs initial")
    axes[0].axhline(0.5, color="grey", lw=0.8)
    axes[0].set(ylim=(0, 1), xlabel="labels so far", title="learning curve (held-out, blind)")
    if judged:
        _errorbar(axes[1], [x for x, e in zip(xs, ev) if "labelers" in e["initial"]],
                  [lab for _, lab in judged], "win_rate", "o-", "labelers, vs initial")
    prev = [(x, e["previous"]["labelers"]) for x, e in zip(xs, ev) if "labelers" in e.get("previous", {})]
    if prev:
        _errorbar(axes[1], [x for x, _ in prev], [p for _, p in prev], "win_rate", "^-",
                  "labelers, vs previous kept")
    if all("judge_win_rate" in e["initial"] for e in ev):
        _errorbar(axes[1], xs, [e["initial"] for e in ev], "judge_win_rate", "d:", "oracle judge, vs initial")
    _errorbar(axes[1], xs, [e["initial"] for e in ev], "reward_win_rate", "s--", "reward model, vs initial")
    axes[1].axhline(0.5, color="grey", lw=0.8)
    axes[1].set(ylim=(0, 1), title="win rate on held-out prompts")
    axes[2].plot(xs, [e["initial"]["reward_policy"] for e in ev], "o-", label="policy")
    axes[2].plot(xs, [e["initial"]["reward_reference"] for e in ev], "s--", label="initial")
    axes[2].set_title("mean reward (this round's RM)")
    _errorbar(axes[3], xs, [e["initial"] for e in ev], "kl", "o-", "held-out KL")
    if kl_budget:
        axes[3].axhline(kl_budget, color="C3", ls="--", lw=1, label="KL budget")
    axes[3].set_title("KL(policy ‖ initial) per response, nats")
    _plot_labels(axes[4], xs, [s for _, s in rounds])
    for i, ax in enumerate(axes):
        if i:
            ax.set_xlabel("round")
            ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_labels(ax, xs: list[int], states: list[dict]) -> None:
    alpha = [(x, s["labels"]["krippendorff_alpha"]) for x, s in zip(xs, states)
             if s["labels"]["krippendorff_alpha"] is not None]
    if alpha:
        ax.plot(*zip(*alpha), "o-", label="Krippendorff's alpha")
    for slice_name, marker in (("active", "s"), ("random", "^")):
        acc = [(x, s["reward"][f"fresh_accuracy_{slice_name}"]) for x, s in zip(xs, states)
               if f"fresh_accuracy_{slice_name}" in s.get("reward", {})]
        if acc:
            ax.plot(*zip(*acc), marker + "--", label=f"previous RM accuracy on fresh labels ({slice_name})")
    if not alpha:
        ax.text(0.5, 0.5, "Krippendorff's α: no pair has two labels\n(k ≥ 2 measures it)"
                + ("" if len(xs) > 1
                   else "\n\nfrom round 2: the previous reward\nmodel's accuracy on fresh labels"),
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="grey")
    ax.set(title="labels", ylim=(-0.2, 1.05))


def _verdict(state: dict, keep_worse: bool, not_kept: str, kept_anyway: str) -> str:
    """How a round the labelers found worse is marked: not kept, or kept anyway (`keep_worse_rounds`)."""
    if state.get("kept", True):
        return ""
    return kept_anyway if keep_worse else not_kept


def _row(r: int, s: dict, keep_worse: bool) -> str:
    e, fresh = s["evaluation"], s.get("reward", {})
    initial, previous = e["initial"], e.get("previous")
    accuracy = fresh.get("fresh_accuracy")
    lab = initial.get("labelers") or {"win_rate": None}     # rounds evaluated before labelers decided: –
    versus_previous = _with_interval(previous["labelers"]["win_rate"], previous["labelers"]["interval"]) \
        if previous and "labelers" in previous else "–"
    oracle = _with_interval(initial["judge_win_rate"], initial["judge_interval"]) \
        if "judge_win_rate" in initial else "–"
    return (f"| {r}{_verdict(s, keep_worse, ' (not kept)', ' (worse, kept anyway)')} | "
            f"{_with_interval(lab['win_rate'], lab['interval']) if lab['win_rate'] is not None else '–'} | "
            f"{' / '.join(map(str, lab.get('wins_ties_losses', ['–'] * 3)))} ({lab.get('labels', '–')}) | "
            f"{versus_previous} | {oracle} | "
            f"{_with_interval(initial['reward_win_rate'], initial['reward_interval'])} | "
            f"{_with_interval(initial['kl'], initial['kl_interval'])} | {initial['length']:.0f} | "
            f"{s['labels']['labels']} | {_alpha(s['labels'])} | "
            f"{_with_interval(accuracy['accuracy'], accuracy['interval']) if accuracy else '–'} | "
            f"{_share(fresh.get('fresh_accuracy_active'))} / {_share(fresh.get('fresh_accuracy_random'))} |")


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _warnings(rounds: list[tuple[int, dict]]) -> str:
    lines = [f"> **⚠ Round {r}:** {w}" for r, s in rounds for w in s.get("warnings", [])]
    if not lines:
        return "No warnings: the reward model and the labelers agree within their intervals.\n"
    return "\n".join(lines) + "\n"


def _who(cfg: dict) -> str:
    if cfg["labelers"]:
        return f"{cfg['labelers']} simulated labelers (judge `{cfg['judge']}`)"
    oracle = f", oracle judge `{cfg['judge']}`" if cfg["judge"] != "none" else ""
    return "people labelling at the app" + oracle


def _budget_of(cfg: dict) -> str:
    if cfg.get("round_start") == "stack":
        return (" per round, against the last kept policy (rounds stacked: the KL to the initial policy "
                "grows round by round)")
    return " against the initial policy"


def report_markdown(state: dict, rounds: list[tuple[int, dict]]) -> str:
    cfg = state["config"]
    example = rounds[-1][1]["evaluation"]["initial"].get("example") or {}
    n = rounds[-1][1]["evaluation"]["initial"].get("prompts", "")
    rounds_text = f"{cfg['rounds']} round" + ("" if cfg["rounds"] == 1 else "s")
    return f"""# align loop report

Policy `{cfg['policy']['model']}` (quantization {cfg['policy']['quantization']}), {rounds_text},
{cfg['method'].upper()}, {_who(cfg)}, k = {cfg['k']},
reward model on `{cfg['reward']['model']}`, KL budget {cfg['kl_budget']} nats per response{_budget_of(cfg)}.

{_warnings(rounds)}
![rounds](report.png)

The labelers decide: each round they compare the new policy's answers to held-out prompts with the
last kept policy's (and the initial one's), blind, in the labeling app; a win counts 1, a tie ½. Their
win rate carries an anytime-valid 95% interval (a betting confidence sequence, Waudby-Smith & Ramdas
2024), so each comparison stops as soon as it leaves ½ or at {cfg.get('eval_labels', '–')} labels; a round
they find worse than the last kept one is not kept. The oracle judge (`{cfg['judge']}` at temperature 0,
on the {n} first answers) and the round's reward model ("RM", the proxy the policy was trained towards)
give their win rates beside it, with 95% Wilson intervals; KL(policy ‖ initial) is per response (exact
per-token KL over the vocabulary, summed), with a 95% interval.

{TABLE_HEADER}
{chr(10).join(_row(r, s, cfg.get('keep_worse_rounds', False)) for r, s in rounds)}

From round 2, a share `random_share` of the pairs is chosen at random and the rest by the previous
reward model's uncertainty: the previous model's accuracy on the fresh labels of each slice shows
whether the uncertain pairs were indeed the ones it got wrong (lower = more informative to label).

Example (held-out): **{example.get('prompt', '')}**
- initial: {example.get('reference', '')}
- final: {example.get('policy', '')}
"""


def write_report(state: dict, out: Path) -> Path:
    """report.md and report.html with the PNG plot of the rounds so far."""
    rounds = _evaluated_rounds(state)
    if not rounds:
        return out / "report.md"
    cfg = state["config"]      # stacked rounds hold it per round: no budget line on the KL to the initial
    budget = None if cfg.get("round_start") == "stack" else cfg.get("kl_budget")
    plot_rounds(rounds, out / "report.png", budget)
    md = report_markdown(state, rounds)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>align loop report</title>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:auto'><pre style='white-space:pre-wrap'>"
        + html.escape(md) + "</pre><img src='report.png' style='width:100%'></body>", encoding="utf-8")
    return out / "report.md"


def round_lineage(r: int, state: dict, cfg, url: str, parent: str | None):
    """The model card's lineage of round r's policy (`foundation.cards`): the loop's settings, the labels
    so far, the round's win rates with their intervals and its KL; `parent`: the policy it was built on."""
    from foundation.cards import Lineage, public_url

    results = []
    for e in state["evaluation"].values():
        if "labelers" in e:
            lab = e["labelers"]
            results.append({"name": f"labelers' win rate vs round {e['round']}", "value": lab["win_rate"],
                            "interval": lab["interval"], "n": lab["labels"]})
        if "judge_win_rate" in e:
            results.append({"name": f"oracle judge ({cfg.judge}) win rate vs round {e['round']}",
                            "value": e["judge_win_rate"], "interval": e["judge_interval"], "n": e["prompts"]})
    initial = state["evaluation"]["initial"]
    results.append({"name": "KL to the initial policy (nats per response)", "value": initial["kl"],
                    "interval": initial["kl_interval"], "n": initial["prompts"]})
    labels = state["labels"]
    alpha = labels["krippendorff_alpha"]
    return Lineage(
        method=f"loop round {r} ({cfg.method.upper()})", base_model=cfg.policy.model, parent=parent,
        data={"store": public_url(url), "batches": f"round-1 .. round-{r} (train)",
              "labels so far": labels["labels"]},
        settings={"round_start": cfg.round_start, "kl_budget": cfg.kl_budget,
                  "guard scale": state.get("kl_guard", {}).get("scale", 1.0), "seed": cfg.seed},
        loop={"round": r, "kept": state["kept"], "labelers": cfg.labelers or "people",
              "agreement (Krippendorff's alpha)": alpha if alpha is not None
                                                  else "not measured (one label per pair)"},
        results=results)
