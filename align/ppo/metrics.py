"""Where PPO's metrics go: TensorBoard or Weights & Biases (`report_to`), and a PNG of the curves."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["MetricsSink", "plot_history"]


class MetricsSink:
    """Scalars of each logged update to `report_to` (none, tensorboard or wandb)."""

    def __init__(self, report_to: str, log_dir: Path, run_config: dict):
        self.report_to, self.log_dir, self.run_config = report_to, log_dir, run_config
        self._writer = None

    def log(self, metrics: dict, step: int) -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}
        if self.report_to == "tensorboard":
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.log_dir))
            for k, v in scalars.items():
                self._writer.add_scalar(k, v, step)
        elif self.report_to == "wandb":
            import wandb

            if wandb.run is None:
                wandb.init(project="align-toolkit", config=self.run_config)
            wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def plot_history(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, key, title in zip(axes, ("rewards/mean", "objective/kl", "objective/entropy"),
                              ("mean reward", "KL(policy ‖ reference) per response", "entropy per token")):
        ax.plot(steps, [h.get(key, math.nan) for h in history], marker=".")
        ax.set_title(title)
        ax.set_xlabel("PPO update")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
