"""The loop's figures, one step per round, to an experiment tracker through the same `report_to` switch
as the trainers (TensorBoard, W&B): the labelers' and the oracle judge's win rates with their interval
ends, the reward model's, the KL, the labels so far and their agreement, the previous reward model's
accuracy on fresh labels, the guard's scale and each stage's seconds."""

from __future__ import annotations

from pathlib import Path

__all__ = ["RoundTracker", "round_metrics"]


def round_metrics(state: dict) -> dict[str, float]:
    """A finished round's figures (its `loop_state.json` entry) as flat, namespaced scalars."""
    out: dict[str, float] = {"loop/kept": float(state.get("kept", True)),
                             "loop/labels_so_far": float(state["labels"]["labels"])}
    for name, e in state.get("evaluation", {}).items():
        lab = e.get("labelers")
        if lab:
            out[f"labelers/win_rate_vs_{name}"] = lab["win_rate"]
            (out[f"labelers/win_rate_vs_{name}_low"],
             out[f"labelers/win_rate_vs_{name}_high"]) = lab["interval"]
            out[f"labelers/labels_vs_{name}"] = float(lab["labels"])
        if "judge_win_rate" in e:
            out[f"oracle/win_rate_vs_{name}"] = e["judge_win_rate"]
        out[f"reward_model/win_rate_vs_{name}"] = e["reward_win_rate"]
        if e.get("reward_expected_win_rate") is not None:
            out[f"reward_model/odds_win_rate_vs_{name}"] = e["reward_expected_win_rate"]
        if e.get("kl") is not None:
            out[f"policy/kl_vs_{name}"] = e["kl"]
    alpha = state["labels"].get("krippendorff_alpha")
    if alpha is not None:
        out["labels/krippendorff_alpha"] = alpha
    fresh = state.get("reward", {}).get("fresh_accuracy")
    if fresh:
        out["reward_model/previous_accuracy_on_fresh_labels"] = fresh["accuracy"]
    check = state.get("reward", {}).get("learnability")
    if check:
        out["reward_model/two_fold_accuracy"] = check["accuracy"]
    guard = state.get("kl_guard")
    if guard:
        out["policy/guard_scale"] = guard["scale"]
    for stage, seconds in state.get("seconds", {}).items():
        out[f"seconds/{stage}"] = seconds
    return out


class RoundTracker:
    """Writes `round_metrics` at step = round to `report_to`: tensorboard (OUT/runs), wandb, or none."""

    def __init__(self, report_to: str, out: Path, config: dict):
        self.report_to = report_to
        self.writer = None
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out) / "runs"))
        elif report_to == "wandb":
            import wandb

            self.writer = wandb.init(project="align-loop", name=Path(out).name, config=config, dir=str(out))

    def log(self, r: int, metrics: dict[str, float]) -> None:
        if self.report_to == "tensorboard":
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, global_step=r)
            self.writer.flush()
        elif self.report_to == "wandb":
            self.writer.log(metrics, step=r)

    def close(self) -> None:
        if self.writer is not None:
            (self.writer.close if self.report_to == "tensorboard" else self.writer.finish)()
            self.writer = None
