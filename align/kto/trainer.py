"""`align kto`: TRL's KTOTrainer on our LoRA (or QLoRA) policy; the reference is the adapter disabled."""

from __future__ import annotations

import json
from pathlib import Path

from align.fused_head import score_labelled_positions_only
from align.kto.config import KTOConfig
from align.policy import load_policy
from foundation.errors import DataError
from foundation.training import last_checkpoint, save_trained, trainer_arguments

__all__ = ["train_kto", "read_kto_rows"]


def _messages(value, role: str, where: str, name: str) -> list[dict]:
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                 for m in value):
        return value
    raise DataError(f"{where}: `{name}` must be text or a list of {{role, content}} messages, "
                    f"got {value!r:.80}.")


def _row(row, at: str) -> dict:
    if not isinstance(row, dict) or "label" not in row:
        raise DataError(f"{at}: a row needs `prompt`, `completion` and `label` (true = good).")
    if not isinstance(row["label"], bool):
        raise DataError(f"{at}: `label` must be true or false, got {row['label']!r}.")
    return {"prompt": _messages(row.get("prompt"), "user", at, "prompt"),
            "completion": _messages(row.get("completion"), "assistant", at, "completion"),
            "label": row["label"]}


def read_kto_rows(path: str, max_samples: int | None = None, skip_invalid: bool = False) -> list[dict]:
    """Conversational unpaired rows (`prompt`, `completion`, `label`) from a saved dataset folder (the
    labeling app's `kto/` export) or a JSONL file; a bad row stops the read naming its line and field
    (or, with `skip_invalid`, is skipped and counted)."""
    source = Path(path)
    if source.is_dir():
        from datasets import load_from_disk

        raw = list(load_from_disk(str(source)))
        where = [f"{path}: row {i + 1}" for i in range(len(raw))]
    elif source.is_file():
        raw, where = [], []
        with source.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        raw.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}: line {n} is not JSON ({e.msg}).") from None
                    where.append(f"{path}: line {n}")
    else:
        raise DataError(f"{path}: no such file or folder.")
    rows, skipped = [], 0
    for row, at in zip(raw, where):
        try:
            rows.append(_row(row, at))
        except DataError:
            if not skip_invalid:
                raise
            skipped += 1
    if skipped:
        print(f"kto data: {skipped} malformed rows skipped")
    if not rows:
        raise DataError(f"{path}: no rated rows to train on.")
    if len({r["label"] for r in rows}) < 2:
        kind = "good" if rows[0]["label"] else "bad"
        raise DataError(f"{path}: every row is {kind}; KTO needs both kinds.")
    return rows[:max_samples] if max_samples else rows


def train_kto(config: KTOConfig) -> str:
    import trl
    from datasets import Dataset
    from transformers import set_seed

    rows = read_kto_rows(config.data, config.max_samples, config.skip_invalid)
    good = sum(r["label"] for r in rows)
    print(f"kto data: {len(rows)} rows ({good} good, {len(rows) - good} bad)")
    set_seed(config.seed)  # before the adapter is initialised: the same run twice gives the same weights
    model, tokenizer = load_policy(config)
    args = trl.KTOConfig(**trainer_arguments(config), beta=config.beta, max_length=config.max_length,
                         desirable_weight=config.desirable_weight,
                         undesirable_weight=config.undesirable_weight)
    trainer = trl.KTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
    score_labelled_positions_only(trainer.model)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_trained(trainer, tokenizer, config)
