"""What every trainer built on a 🤗 Trainer shares (SFT, DPO, reward): its arguments from our config, and
resuming. It lives in `reward` so that both `reward` and `align` can use it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["trainer_arguments", "last_checkpoint"]


def trainer_arguments(config) -> dict:
    """Keyword arguments for a TRL/transformers `TrainingArguments` from a `TrainOptions` config."""
    import torch

    from reward.hub import pick_dtype

    dtype = pick_dtype(config.dtype) if hasattr(config, "dtype") else torch.float32
    return dict(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=[] if config.report_to == "none" else [config.report_to],
        use_cpu=not torch.cuda.is_available(),
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def last_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder in `output_dir`, or None."""
    ckpts = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return str(max(ckpts, key=lambda p: int(p.name.split("-")[-1]))) if ckpts else None
