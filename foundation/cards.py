"""Model cards that tell a saved model's lineage: what it was trained from (the base model as the Hub
knows it, the parent adapter), how (the method and the settings that differ from its defaults), on what
(a file, or a label store's batches: never a password), and, for a loop round, the labels so far and
the round's win rates with their intervals.

Every command that saves a model writes one (`README.md`, huggingface_hub's `ModelCard` layout: YAML
metadata with `base_model`, `library_name`, `tags` and `model-index` results, then a short text), in
place of peft's empty template. The lineage itself sits in the metadata under `align_lineage`, so that
`align lineage PATH` can print it back, parent by parent.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

__all__ = ["Lineage", "write_card", "write_cards", "read_lineage", "lineage_chain", "base_model_id",
           "public_url", "changed_settings"]

CARD = "README.md"
# Fields that say where things go or how often to log, not how a model was trained.
_NOT_SETTINGS = {"model", "data", "eval_data", "output_dir", "adapter", "merge_adapter", "prompts",
                 "reward_model", "report_to", "logging_steps", "save_steps", "resume", "format",
                 "skip_invalid"}


@dataclass
class Lineage:
    """Where a saved model came from (see the module's docstring)."""

    method: str                                    # e.g. "DPO", "reward model", "loop round 2 (DPO)"
    base_model: str                                # as the user named it (a builtin: alias, hub id, folder)
    adapter: bool = True                           # a LoRA adapter on `base_model` (else a whole model)
    parent: str | None = None                      # the adapter it was trained further from, or stacked on
    data: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)   # {"name", "value", "interval", "n"}
    loop: dict | None = None


def base_model_id(model: str) -> str | None:
    """The base model as the Hub names it: the id behind a `builtin:` alias, a hub id as given, the base
    of a saved adapter folder; None for a local folder of full weights (no Hub can resolve it)."""
    from foundation.models import BUILTIN_MODELS

    if model.startswith("builtin:"):
        spec = BUILTIN_MODELS.get(model.split(":", 1)[1])
        return spec.hub_id if spec else None
    folder = Path(model)
    if folder.exists():
        config = folder / "adapter_config.json"
        if config.is_file():
            base = json.loads(config.read_text()).get("base_model_name_or_path")
            return base_model_id(base) if base else None
        return None
    return model


def public_url(url: str) -> str:
    """A store URL without its password (`postgresql://ann:***@host/db`)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def changed_settings(config) -> dict:
    """The fields of a config dataclass that differ from their defaults, less paths and logging."""
    import dataclasses

    out = {}
    for f in fields(config):
        if f.name in _NOT_SETTINGS:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            continue
        if value != default:
            out[f.name] = value
    return out


def write_card(directory: str | Path, lineage: Lineage) -> Path:
    """Write `directory/README.md` for the model saved there."""
    from huggingface_hub import ModelCard, ModelCardData

    directory = Path(directory)
    base = base_model_id(lineage.base_model)
    data = ModelCardData(
        base_model=base, library_name="peft" if lineage.adapter else "transformers",
        tags=["align-toolkit", *_tags(lineage.method)], align_lineage=asdict(lineage))
    metadata = data.to_dict()
    if lineage.results:
        metadata["model-index"] = [{"name": directory.name, "results": [_result(r) for r in lineage.results]}]
    text = "---\n" + _yaml(metadata) + "---\n\n" + _body(directory, lineage, base)
    card = ModelCard(text)
    card.save(directory / CARD)
    return directory / CARD


def write_cards(directory: str | Path, lineage: Lineage) -> None:
    """`write_card` for `directory` and for each model saved inside it: the Trainer's checkpoints (which
    hold peft's empty template) and named adapters saved beside the trained one (TRL's `ref`)."""
    from dataclasses import replace

    write_card(directory, lineage)
    for inner in sorted(p for p in Path(directory).iterdir() if p.is_dir()):
        if not any((inner / name).is_file() for name in ("adapter_config.json", "config.json")):
            continue
        if inner.name.startswith("checkpoint-"):
            method = f"{lineage.method}, checkpoint at step {inner.name.split('-')[-1]}"
        else:
            method = f"{lineage.method}: the `{inner.name}` adapter saved beside the trained one"
        write_cards(inner, replace(lineage, method=method))


def read_lineage(directory: str | Path) -> Lineage | None:
    """The lineage in `directory`'s card, or None (no card, or a card align-toolkit did not write)."""
    from huggingface_hub import ModelCard

    path = Path(directory) / CARD
    if not path.is_file():
        return None
    meta = ModelCard.load(path).data.to_dict().get("align_lineage")
    return Lineage(**meta) if isinstance(meta, dict) else None


def lineage_chain(directory: str | Path) -> list[tuple[str, Lineage | None]]:
    """`directory`'s lineage, then its parent's, and so on while a parent folder has a card."""
    chain, seen = [], set()
    current: str | None = str(directory)
    while current and current not in seen and Path(current).exists():
        seen.add(current)
        lineage = read_lineage(current)
        chain.append((current, lineage))
        current = lineage.parent if lineage else None
    return chain


def _tags(method: str) -> list[str]:
    words = method.lower()
    return [t for t in ("dpo", "ppo", "kto", "grpo", "sft", "reward-model", "rlhf")
            if t.replace("-", " ") in words or (t == "rlhf" and "loop" in words)]


def _result(r: dict) -> dict:
    metric = {"type": r["name"].lower().replace(" ", "_").replace("'", ""), "name": r["name"],
              "value": round(float(r["value"]), 4)}
    return {"task": {"type": "text-generation"},
            "dataset": {"type": "held-out", "name": r.get("dataset", "held-out prompts")},
            "metrics": [metric]}


def _yaml(metadata: dict) -> str:
    import yaml

    return yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=100)


def _body(directory: Path, lineage: Lineage, base: str | None) -> str:
    lines = [f"# {directory.name}", "",
             f"{lineage.method} of `{lineage.base_model}`"
             + (f" ([{base}](https://huggingface.co/{base}))" if base and base != lineage.base_model else "")
             + (", a LoRA adapter" if lineage.adapter else "") + ", trained with align-toolkit.", ""]
    if lineage.parent:
        lines += [f"- trained from: `{lineage.parent}`"]
    if lineage.data:
        lines += ["- data: " + ", ".join(f"{k} {_show(v)}" for k, v in lineage.data.items())]
    if lineage.settings:
        lines += ["- settings: " + ", ".join(f"{k} {_show(v)}" for k, v in lineage.settings.items())]
    if lineage.loop:
        lines += ["- loop: " + ", ".join(f"{k} {_show(v)}" for k, v in lineage.loop.items())]
    if lineage.results:
        lines += ["", "| result | value | 95% interval | n |", "|---|---|---|---|"]
        for r in lineage.results:
            low, high = r.get("interval") or ("", "")
            interval = f"[{low:.2f}, {high:.2f}]" if r.get("interval") else "–"
            lines.append(f"| {r['name']} | {r['value']:.3f} | {interval} | {r.get('n', '–')} |")
    loader = "align.policy import Policy" if lineage.adapter and "reward" not in lineage.method \
        else "reward import RewardModel"
    call = "Policy" if loader.endswith("Policy") else "RewardModel"
    lines += ["", "```python", f"from {loader}", "", f'model = {call}.from_pretrained("{directory}")', "```",
              "", "`align lineage PATH` prints this model's lineage, parent by parent.", ""]
    return "\n".join(lines)


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
