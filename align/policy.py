"""Policies: the one loader (`load_policy`) and `Policy`, a causal LM (quantized and/or with a LoRA
adapter) that samples candidate responses and saves itself for training or for serving."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from foundation.models import eos_ids, load_model
from foundation.records import Message, as_chat

__all__ = ["load_policy", "Policy", "Generation"]


def load_policy(options, *, padding_side: str = "right"):
    """`(model, tokenizer)` for `options` (`foundation.options.ModelOptions`): a hub id, a folder or a
    `builtin:` alias; LoRA through peft, 4-bit/8-bit through bitsandbytes; dtype for the hardware.
    Use `padding_side="left"` for generation."""
    from transformers import AutoModelForCausalLM

    return load_model(AutoModelForCausalLM, options, task_type="CAUSAL_LM", padding_side=padding_side)


@dataclass
class Generation:
    """One sampled response with what produced it."""

    text: str
    token_ids: list[int]
    logprobs: list[float]            # log p(token | context) of each sampled token, under the sampling policy
    finished: bool                   # ended with EOS (False: cut at max_new_tokens)
    sampling: dict = field(default_factory=dict)


class Policy:
    """A causal LM with its tokenizer, ready to sample and to be saved.

    >>> policy = Policy.from_pretrained("builtin:smollm2-135m-instruct")
    >>> policy.generate([[{"role": "user", "content": "Hi!"}]], n=2, temperature=0.8)
    """

    def __init__(self, model, tokenizer, name: str, adapter: str | None = None, engine: str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.adapter = adapter
        self.engine = engine              # generation engine (`align.rollout`): auto, hf, fused, vllm
        self._noticed = False             # the engine's fallback notice is printed once

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, adapter: str | None = None, lora: bool = False,
                        quantization: str = "none", dtype: str = "auto", engine: str = "auto",
                        **lora_options) -> "Policy":
        """A base model (hub id, folder or `builtin:` alias), optionally with a saved LoRA `adapter`
        folder on top, or a fresh adapter (`lora=True`) to train."""
        from foundation.options import ModelOptions

        if adapter is None and (Path(name_or_path) / "adapter_config.json").is_file():
            adapter, name_or_path = name_or_path, _adapter_base(name_or_path)
        options = ModelOptions(model=name_or_path, lora=lora and adapter is None, quantization=quantization,
                               dtype=dtype, **lora_options)
        model, tokenizer = load_policy(options, padding_side="left")
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, is_trainable=lora)
        return cls(model, tokenizer, name_or_path, adapter, engine)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def generate(self, conversations: Sequence[str | Sequence[Message]], n: int = 1, *,
                 temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 128,
                 batch_size: int = 64, seed: int | None = None, engine: str | None = None,
                 progress: bool = False) -> list[list[Generation]]:
        """`n` responses for each conversation (a prompt string or chat messages), sampled in batches,
        each stopping at EOS, through the generation `engine` (default: the policy's, `auto`; see
        `align.rollout`). `temperature=0` is greedy. The engine reads the model's current weights."""
        from align.rollout import SamplingParams, make_sampler

        tok = self.tokenizer
        prompts = [tok.apply_chat_template(as_chat(c), tokenize=True, add_generation_prompt=True,
                                           return_dict=False) for c in conversations]
        sampler = make_sampler(engine or self.engine, self.model, pad_id=tok.pad_token_id,
                               eos=eos_ids(tok, self.model), batch_size=batch_size, quiet=self._noticed)
        self._noticed = True
        sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                    "engine": sampler.name}
        groups = range(0, len(prompts), max(1, batch_size // n))
        if progress:
            from tqdm.auto import tqdm

            groups = tqdm(groups, desc="generating", unit="batch")
        out: list[list[Generation]] = []
        for start in groups:
            chunk = prompts[start:start + max(1, batch_size // n)]
            params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                    seed=None if seed is None else seed + start)   # a seed per chunk
            for completions in sampler.sample(chunk, params):
                out.append([Generation(tok.decode(c.token_ids, skip_special_tokens=True).strip(), c.token_ids,
                                       c.logprobs, c.finished, dict(sampling)) for c in completions])
        return out

    def save(self, directory: str | Path) -> None:
        """Save the adapter only (small); `Policy.from_pretrained(directory)` finds the base again."""
        from foundation.training import record_base_model

        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        record_base_model(str(directory), self.name)

    def merge_and_save(self, directory: str | Path) -> None:
        """Save a plain model with the adapter merged in, for serving without peft. The policy itself
        keeps its adapter (the merge happens on a copy)."""
        import copy

        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


def _adapter_base(adapter_dir: str) -> str:
    import json

    meta = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    base = meta.get("base_model_name_or_path")
    if not base:
        from foundation.errors import ModelError

        raise ModelError(f"{adapter_dir}/adapter_config.json names no base model; "
                         "pass the base and adapter=.")
    return base
