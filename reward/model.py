"""`RewardModel`: a scalar head on a causal-LM or encoder backbone, scored at the text level.

The model applies its own tokenizer and chat template to chat messages, so a policy with any
tokenizer can be scored. Over-long inputs lose the start of the prompt, never the response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from foundation.records import Message

__all__ = ["RewardModel", "encode_pair_side", "prompt_response_ids", "right_pad"]

REWARD_CONFIG = "reward_config.json"


def _as_messages(value: str | Sequence[Message], role: str) -> list[Message]:
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a text (e.g. [CLS] … [SEP] for BERT, BOS for Llama)."""
    cached = getattr(tokenizer, "_align_special_wrap", None)
    if cached is None:
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        i = next((k for k in range(len(full) - len(bare) + 1) if full[k: k + len(bare)] == bare), 0)
        cached = (full[:i], full[i + len(bare):])
        tokenizer._align_special_wrap = cached
    return cached


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int):
    """Token-id lists -> right-padded `input_ids` and `attention_mask`, both (B, T) long tensors."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def prompt_response_ids(tokenizer, prompt: Sequence[Message],
                        response: Sequence[Message]) -> tuple[list[int], list[int]]:
    """The chat template's tokens for `prompt` (with the generation prompt) and for `response` after it,
    without special tokens. A template that rewrites earlier turns gives everything to the prompt."""
    prompt_text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(list(prompt) + list(response), tokenize=False)
    if not full_text.startswith(prompt_text):
        return tokenizer(full_text, add_special_tokens=False)["input_ids"], []
    return (tokenizer(prompt_text, add_special_tokens=False)["input_ids"],
            tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"])


def encode_pair_side(tokenizer, prompt: Sequence[Message], response: Sequence[Message],
                     max_length: int) -> tuple[list[int], bool]:
    """Token ids of prompt + response in the chat template, at most `max_length` long.

    Returns `(ids, truncated)`. Truncation drops the oldest prompt tokens first; only a response longer
    than the whole budget loses its own tail.
    """
    p_ids, r_ids = prompt_response_ids(tokenizer, prompt, response)
    prefix, suffix = _special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    truncated = len(p_ids) + len(r_ids) > budget
    if len(r_ids) >= budget:
        p_ids, r_ids = [], r_ids[:budget]
    elif truncated:
        p_ids = p_ids[len(p_ids) + len(r_ids) - budget:]
    return prefix + p_ids + r_ids + suffix, truncated


class RewardModel:
    """A sequence-classification model with one output (the reward) and its tokenizer.

    >>> rm = RewardModel.from_pretrained("builtin:minilm-l6")
    >>> rm.score(["Write a haiku."], ["Autumn moonlight— a worm digs silently into the chestnut."])
    """

    def __init__(self, model, tokenizer, max_length: int = 512):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    # ------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: str, *, lora: bool = False, quantization: str = "none",
                        dtype: str = "auto", max_length: int | None = None, **lora_options) -> "RewardModel":
        """A saved reward model (folder with `reward_config.json`), or a fresh head on any backbone."""
        from foundation.options import ModelOptions

        saved = Path(name_or_path) / REWARD_CONFIG
        meta = json.loads(saved.read_text()) if saved.is_file() else {}
        options = ModelOptions(model=name_or_path, lora=lora, quantization=quantization, dtype=dtype,
                               **lora_options)
        from reward.backbone import load_reward_backbone

        model, tokenizer = load_reward_backbone(options)
        return cls(model, tokenizer, max_length or meta.get("max_length", 512))

    def save_pretrained(self, directory: str | Path) -> None:
        """Save a plain model (a LoRA adapter is merged in) that loads with transformers alone."""
        directory = Path(directory)
        model = self.model
        if hasattr(model, "merge_and_unload") and not getattr(model, "is_loaded_in_4bit", False) \
                and not getattr(model, "is_loaded_in_8bit", False):
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / REWARD_CONFIG).write_text(json.dumps({"max_length": self.max_length}, indent=2))

    def to(self, device) -> "RewardModel":
        """Move the model to `device` (a quantized model stays where its loader placed it)."""
        if not (getattr(self.model, "is_loaded_in_4bit", False)
                or getattr(self.model, "is_loaded_in_8bit", False)):
            self.model.to(device)
        return self

    # ------------------------------------------------------------------------------------- scoring
    @property
    def device(self):
        return next(self.model.parameters()).device

    def collate(self, sequences: list[list[int]]):
        """Right-padded input ids and attention mask, (B, T), on the model's device."""
        ids, mask = right_pad(sequences, self.tokenizer.pad_token_id)
        return ids.to(self.device), mask.to(self.device)

    def rewards(self, input_ids, attention_mask):
        """(B,) rewards; the head reads the last non-pad token (causal LM) or [CLS] (encoder)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()

    def score(self, prompts: Sequence[str | Sequence[Message]], responses: Sequence[str | Sequence[Message]],
              batch_size: int = 16, progress: bool = False) -> list[float]:
        """One reward per (prompt, response). Inputs are text or chat messages; batches are formed
        from inputs of similar length so that little compute goes to padding."""
        import torch

        if len(prompts) != len(responses):
            raise ValueError(f"score() got {len(prompts)} prompts but {len(responses)} responses.")
        encoded = [encode_pair_side(self.tokenizer, _as_messages(p, "user"), _as_messages(r, "assistant"),
                                    self.max_length)[0] for p, r in zip(prompts, responses)]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = [0.0] * len(encoded)
        was_training = self.model.training
        self.model.eval()
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="scoring", unit="batch")
        with torch.no_grad():
            for start in starts:
                idx = order[start: start + batch_size]
                ids, mask = self.collate([encoded[i] for i in idx])
                for i, r in zip(idx, self.rewards(ids, mask).tolist()):
                    out[i] = r
        self.model.train(was_training)
        return out

    def prefer(self, prompt: str | Sequence[Message], a: str | Sequence[Message],
               b: str | Sequence[Message]) -> float:
        """P(a ≻ b | prompt) = σ(r(a) − r(b))."""
        from foundation.stats import sigmoid

        r_a, r_b = self.score([prompt, prompt], [a, b])
        return sigmoid(r_a - r_b)

    def __call__(self, prompts, responses) -> list[float]:
        """A reward function `f(prompts, responses) -> list[float]` for PPO/GRPO."""
        return self.score(prompts, responses)
