"""The one loader for reward-model backbones: a causal LM or an encoder with a scalar head."""

from __future__ import annotations

from foundation.models import load_model

__all__ = ["load_reward_backbone"]


def load_reward_backbone(options):
    """`(model, tokenizer)`: `AutoModelForSequenceClassification` with `num_labels=1` (a fresh scalar
    head), quantized and/or with LoRA as `options` (`foundation.options.ModelOptions`) says. With LoRA the
    head is trained in full (peft's SEQ_CLS task keeps `score`/`classifier` in `modules_to_save`)."""
    from transformers import AutoModelForSequenceClassification

    return load_model(AutoModelForSequenceClassification, options, task_type="SEQ_CLS", num_labels=1)
