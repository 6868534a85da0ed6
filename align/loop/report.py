"""The loop's report: one line per stage on the terminal, and after each round `report.md`,
`report.html` and `report.png` (the rounds so far) in the output folder."""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["describe_stage", "write_report"]

NAN = float("nan")


def describe_stage(stage: str, state: dict) -> str:
    """What a finished stage of a round did, in one line."""
    if stage == "select":
        s = state["select"]
        return ", ".join(f"{k} {v}" for k, v in s.items() if k != "uncertainty")
    if stage == "label":
        lab = state["labels"]
        return f"{lab['labels']} labels in the store, Krippendorff's alpha {lab['krippendorff_alpha']}"
    if stage == "reward":
        info = state["reward"]
        fresh = ", ".join(f"{k.split('_')[-1]} {v:.2f}" for k, v in info.items() if k.startswith("fresh"))
        return f"refit on {info['train_records']} records" + (f"; previous RM on fresh labels: {fresh}" if fresh else "")
    if stage == "evaluate":
        return "; ".join(f"vs {k}: judge win rate {v['judge_win_rate']:.2f}, RM win rate {v['reward_win_rate']:.2f}, "
                         f"KL {v['kl']:.2f}" for k, v in state["evaluation"].items())
    if stage == "policy":
        return state["policy"]
    return "done"


def _evaluated_rounds(state: dict) -> list[tuple[int, dict]]:
    return sorted((int(r), s) for r, s in state["rounds"].items() if "evaluation" in s)


def plot_rounds(rounds: list[tuple[int, dict]], path: Path) -> None:
    """Four panels over the rounds: win rates, mean reward, KL to the initial policy, label quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r for r, _ in rounds]
    ev = [s["evaluation"] for _, s in rounds]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].plot(xs, [e["initial"]["judge_win_rate"] for e in ev], "o-", label="judge, vs initial")
    axes[0].plot(xs, [e["initial"]["reward_win_rate"] for e in ev], "s--", label="reward model, vs initial")
    prev = [(x, e["previous"]["judge_win_rate"]) for x, e in zip(xs, ev) if "previous" in e]
    if prev:
        axes[0].plot(*zip(*prev), "^-", label="judge, vs previous round")
    axes[0].axhline(0.5, color="grey", lw=0.8)
    axes[0].set(ylim=(0, 1), title="win rate on held-out prompts")
    axes[1].plot(xs, [e["initial"]["reward_policy"] for e in ev], "o-", label="policy")
    axes[1].plot(xs, [e["initial"]["reward_reference"] for e in ev], "s--", label="initial")
    axes[1].set_title("mean reward (this round's RM)")
    axes[2].plot(xs, [e["initial"]["kl"] for e in ev], "o-")
    axes[2].set_title("KL(policy ‖ initial), nats")
    _plot_labels(axes[3], xs, [s for _, s in rounds])
    for ax in axes:
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
    ax.set(title="labels", ylim=(-0.2, 1.05))


def _row(r: int, s: dict) -> str:
    e, fresh = s["evaluation"], s.get("reward", {})
    return (f"| {r} | {e['initial']['judge_win_rate']:.2f} | "
            f"{e['previous']['judge_win_rate'] if 'previous' in e else NAN:.2f} | "
            f"{e['initial']['reward_win_rate']:.2f} | {e['initial']['kl']:.2f} | {e['initial']['length']:.0f} | "
            f"{s['labels']['labels']} | {s['labels']['krippendorff_alpha']} | "
            f"{fresh.get('fresh_accuracy_active', NAN):.2f} / {fresh.get('fresh_accuracy_random', NAN):.2f} |")


def report_markdown(state: dict, rounds: list[tuple[int, dict]]) -> str:
    cfg = state["config"]
    example = rounds[-1][1]["evaluation"]["initial"].get("example") or {}
    return f"""# align loop report

Policy `{cfg['policy']['model']}` (quantization {cfg['policy']['quantization']}), {cfg['rounds']} rounds,
{cfg['method'].upper()}, judge `{cfg['judge']}` ({cfg['labelers']} simulated labelers, k = {cfg['k']}),
reward model on `{cfg['reward']['model']}`.

![rounds](report.png)

| round | judge win rate vs initial | vs previous | RM win rate vs initial | KL | length (tokens) | labels so far | alpha | previous RM on fresh labels (uncertain / random) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(_row(r, s) for r, s in rounds)}

From round 2, pairs are chosen by the previous reward model's uncertainty, with a random slice kept:
the previous model's accuracy on the fresh labels of each slice shows whether the uncertain pairs were
indeed the ones it got wrong (lower = more informative to label).

Example (held-out): **{example.get('prompt', '')}**
- initial: {example.get('reference', '')}
- final: {example.get('policy', '')}
"""


def write_report(state: dict, out: Path) -> Path:
    """report.md and report.html with the PNG plot of the rounds so far."""
    rounds = _evaluated_rounds(state)
    if not rounds:
        return out / "report.md"
    plot_rounds(rounds, out / "report.png")
    md = report_markdown(state, rounds)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>align loop report</title><body style='font-family:sans-serif;"
        "max-width:1100px;margin:auto'><pre style='white-space:pre-wrap'>" + html.escape(md) +
        "</pre><img src='report.png' style='width:100%'></body>", encoding="utf-8")
    return out / "report.md"
