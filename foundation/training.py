"""What every trainer built on a 🤗 Trainer shares (SFT, DPO, KTO, GRPO, reward): its arguments from our
config, resuming, and saving with a model card. Both `reward` and `align` use it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from foundation.cards import Lineage, changed_settings, write_cards

__all__ = ["trainer_arguments", "last_checkpoint"]


def trainer_arguments(config) -> dict:
    """Keyword arguments for a TRL/transformers `TrainingArguments` from a `TrainOptions` config."""
    import torch

    from foundation.models import pick_dtype
    from foundation.precision import autocast_dtype

    dtype = pick_dtype(config.dtype) if hasattr(config, "dtype") else torch.float32
    # auto: bf16 autocast where the hardware multiplies bf16 natively (a bf16 GPU; a CPU with AMX or
    # AVX512-BF16: reward steps 1.8x, DPO steps 1.5x faster there), fp32 elsewhere (13x slower in bf16).
    precision = autocast_dtype(config.mixed_precision, "cuda" if torch.cuda.is_available() else "cpu", dtype)
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
        bf16=precision == torch.bfloat16,
        fp16=precision == torch.float16,
        # Off here: the loader turns it on when `gradient_checkpointing: true`
        # (LoRA-safe, use_reentrant=False).
        # TRL's configs default to True, which costs about 30% more time per step for memory a small model
        # on one machine does not need.
        activation_checkpointing=False,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def last_checkpoint(output_dir: str) -> str | None:
    """The newest complete `checkpoint-N` folder in `output_dir`, or None. A checkpoint whose
    `trainer_state.json` is missing or unreadable (the run was killed while writing it) is passed over,
    with a notice: the run resumes from the one before it."""
    ckpts = sorted((p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for ckpt in ckpts:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, ValueError):
            print(f"resume: {ckpt} is incomplete (killed while it was written); passing over it",
                  file=sys.stderr, flush=True)
    return None


def record_base_model(output_dir: str, model_name: str) -> None:
    """Write the model's own name (e.g. `builtin:smollm2-135m-instruct`, not its cache path) into a
    saved adapter's config, so that the adapter finds its base on another machine too."""
    path = Path(output_dir) / "adapter_config.json"
    if path.is_file():
        meta = json.loads(path.read_text())
        meta["base_model_name_or_path"] = model_name
        path.write_text(json.dumps(meta, indent=2))


def seeded_length_grouped_sampler(trainer, dataset):
    """Trainer's length-grouped sampler, but reproducible: the order of epoch e depends only on
    (seed, e), so a run resumed from a checkpoint sees exactly the batches a straight run sees.
    (transformers' LengthGroupedSampler draws from the global RNG, which differs after a resume.)"""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, batch_size: int, lengths: list[int], seed: int):
            super().__init__(batch_size, lengths=lengths)
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    args = trainer.args
    seed = args.data_seed if args.data_seed is not None else args.seed
    # Group by the global batch (all processes, all accumulation steps), so that 2 processes × batch 4
    # see the same examples per optimizer step as 1 process × batch 4 × 2 accumulation steps.
    return SeededLengthGroupedSampler(args.train_batch_size * args.gradient_accumulation_steps
                                      * args.world_size, dataset[args.length_column_name], seed)


def is_main_process() -> bool:
    """True on rank 0 of a distributed run (torchrun / accelerate launch), and in a plain run."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def save_trained(trainer, tokenizer, config) -> str:
    """Save what a run produced into `config.output_dir`: the model (or adapter), the tokenizer, the
    loss history (`trainer_state.json`), the base model's own name in an adapter's config, and a model
    card with the lineage (`foundation.cards`). In a distributed run only rank 0 writes."""
    trainer.save_model(config.output_dir)      # the Trainer writes on rank 0 only
    if not trainer.is_world_process_zero():
        return config.output_dir
    trainer.state.save_to_json(f"{config.output_dir}/trainer_state.json")
    tokenizer.save_pretrained(config.output_dir)
    record_base_model(config.output_dir, config.model)
    lineage = Lineage(
        method=type(config).__name__.removesuffix("Config"), base_model=config.model, adapter=config.lora,
        parent=getattr(config, "adapter", None) or getattr(config, "merge_adapter", None),
        data={"file": getattr(config, "data", None) or getattr(config, "prompts", None),
              "rows": len(trainer.train_dataset)},
        settings=changed_settings(config))
    write_cards(config.output_dir, lineage)
    return config.output_dir
