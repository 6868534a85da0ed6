"""The `align` command: one entry point, one subcommand per stage.

Training commands take `--config recipe.yaml` and `--field value` overrides, parsed into the
command's config dataclass by `foundation.recipe`. Heavy libraries (torch, transformers, trl) are
imported inside the commands, so `align --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from foundation.errors import AlignError, ConfigError

__all__ = ["main"]


@dataclass(frozen=True)
class TrainCommand:
    config: str   # "module:ConfigClass" (a light module: dataclasses only)
    run: str      # "module:function" taking the config, returning the output folder
    summary: str


# Each training command: `align WORDS [--config FILE] [--field value ...]`.
TRAIN_COMMANDS: dict[str, TrainCommand] = {
    "sft": TrainCommand("align.sft.config:SFTConfig", "align.sft.trainer:train_sft",
                        "Supervised fine-tuning of a policy on chat or preference data (LoRA/QLoRA)."),
    "dpo": TrainCommand("align.dpo.config:DPOConfig", "align.dpo.trainer:train_dpo",
                        "Direct preference optimisation of a LoRA policy "
                        "(sigmoid, ipo, robust, hinge, ...)."),
    "kto": TrainCommand("align.kto.config:KTOConfig", "align.kto.trainer:train_kto",
                        "KTO of a LoRA policy on good/bad ratings of single responses (TRL's KTOTrainer)."),
    "ppo": TrainCommand("align.ppo.config:PPOConfig", "align.ppo.trainer:train_ppo",
                        "PPO of a LoRA policy against a reward model or function (one base, 4-bit ok)."),
    "grpo": TrainCommand("align.grpo.config:GRPOConfig", "align.grpo.trainer:train_grpo",
                         "GRPO (or --algorithm rloo) of a LoRA policy on TRL, "
                         "with our reward model or function."),
    "loop": TrainCommand("align.loop.config:LoopConfig", "align.loop.run:run_loop",
                         "The whole loop in rounds: "
                         "candidates -> labels (app) -> reward model -> DPO/PPO -> report."),
    "reward train": TrainCommand("reward.config:RewardConfig", "reward.trainer:train_reward",
                                 "Train a Bradley-Terry reward model (margins, ties; --ensemble N)."),
}

# Other commands: name -> (module:function taking argv, summary).
TOOL_COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("align.commands.generate:main", "Sample K candidate responses per prompt, with provenance."),
    "evaluate": ("align.commands.evaluate:main",
                 "Win rate over a reference (reward model / judge), KL, length."),
    "data": ("align.commands.data:main", "Convert preference data: `align data convert INPUT --out OUT`."),
    "models": ("align.commands.models:main", "List the built-in offline models, or prepare one."),
    "label": ("align.commands.label:main",
              "The labeling app: serve, add-user, import, export, stats, simulate (--store URL)."),
    "lineage": ("align.commands.lineage:main",
                "Where a saved model came from: method, data, settings, results, parent (its model card)."),
    "reward eval": ("align.commands.reward_eval:main",
                    "Evaluate a reward model: accuracy, by margin, ties, calibration, length bias."),
}


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _usage() -> str:
    width = max(len(n) for n in [*TRAIN_COMMANDS, *TOOL_COMMANDS]) + 2
    lines = ["usage: align COMMAND [options]   (align COMMAND --help for a command's options)", "",
             "Training (each takes --config recipe.yaml and --field value overrides):"]
    lines += [f"  {n:<{width}}{c.summary}" for n, c in TRAIN_COMMANDS.items()]
    lines += ["", "Tools:"]
    lines += [f"  {n:<{width}}{s}" for n, (_, s) in TOOL_COMMANDS.items()]
    lines += ["", "Recipes live in recipes/; see README.md for a tour."]
    return "\n".join(lines)


def _match_command(argv: list[str]) -> tuple[str | None, list[str]]:
    """The longest registered command name that `argv` starts with ("reward train" before "reward")."""
    for n in (2, 1):
        name = " ".join(argv[:n])
        if name in TRAIN_COMMANDS or name in TOOL_COMMANDS:
            return name, argv[n:]
    return None, argv


def run_training(name: str, argv: list[str]) -> int:
    command = TRAIN_COMMANDS[name]
    config_cls = _load(command.config)
    if any(a in ("-h", "--help") for a in argv):
        from foundation.recipe import config_help

        print(f"usage: align {name} [--config recipe.yaml] [--field value ...]\n\n{command.summary}\n"
              f"{(config_cls.__doc__ or '').strip()}\n\n"
              f"Fields (YAML keys or --flags):\n{config_help(config_cls)}")
        return 0
    from foundation.recipe import load_config, parse_flags

    config_path = None
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "--config" and i + 1 < len(argv):
            config_path, i = argv[i + 1], i + 2
        elif argv[i].startswith("--config="):
            config_path, i = argv[i].split("=", 1)[1], i + 1
        else:
            rest.append(argv[i])
            i += 1
    config = load_config(config_cls, config_path, parse_flags(rest, config_cls))
    out = _load(command.run)(config)
    from foundation.training import is_main_process

    # the loop prints its own summary; one line per run, not per rank
    if out is not None and is_main_process():
        print(f"align {name}: done; output in {out}")
    return 0


# Loggers of optional kernels that warn on import, offline, about a hub download that no command needs:
# bitsandbytes' CPU backend tries kernels-community's 4-bit gemm on CPUs with AVX512-BF16 and falls back to
# its own; `kernels` then notes it skipped a publisher check. Errors still show.
_OPTIONAL_KERNEL_LOGGERS = ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")
# transformers 5 renamed its checkpointing methods; TRL and peft still call the old names, once per model:
# a notice for those libraries' authors, nothing a user of `align` can act on.
_RENAMED_IN_TRANSFORMERS = r"`\w*checkpointing\w*` is deprecated and will be removed in v6"


def _quiet_library_notices() -> None:
    import logging
    import warnings

    for name in _OPTIONAL_KERNEL_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=_RENAMED_IN_TRANSFORMERS, category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"align-toolkit {version('align-toolkit')}")
        return 0
    name, rest = _match_command(argv)
    if name is None:
        import difflib

        known = [*TRAIN_COMMANDS, *TOOL_COMMANDS]
        close = difflib.get_close_matches(argv[0], known, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        print(f"align: unknown command {argv[0]!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    from foundation.allocator import keep_freed_memory

    keep_freed_memory()     # about 17% off a training step on a CPU (foundation/allocator.py)
    _quiet_library_notices()
    try:
        if name in TRAIN_COMMANDS:
            return run_training(name, rest)
        return _load(TOOL_COMMANDS[name][0])(rest)
    except ConfigError as e:
        print(f"align {name}: configuration error: {e}", file=sys.stderr)
        return 2
    except AlignError as e:
        print(f"align {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"align {name}: interrupted", file=sys.stderr)
        return 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the tool commands, raising `ConfigError` (exit 2, one message) instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message}\n{self.format_usage().strip()}")


if __name__ == "__main__":
    sys.exit(main())
