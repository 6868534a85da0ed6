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

    def __init__(self, model, tokenizer, name: str, adapter: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.adapter = adapter

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, adapter: str | None = None, lora: bool = False,
                        quantization: str = "none", dtype: str = "auto", **lora_options) -> "Policy":
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
        return cls(model, tokenizer, name_or_path, adapter)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def generate(self, conversations: Sequence[str | Sequence[Message]], n: int = 1, *,
                 temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 128,
                 batch_size: int = 16, seed: int | None = None,
                 progress: bool = False) -> list[list[Generation]]:
        """`n` responses for each conversation (a prompt string or chat messages), sampled in batches
        with left padding, each stopping at EOS. `temperature=0` is greedy."""
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        tok = self.tokenizer
        tok.padding_side = "left"
        prompts = [tok.apply_chat_template(as_chat(c),
                                           tokenize=False, add_generation_prompt=True) for c in conversations]
        jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
        jobs.sort(key=lambda j: len(j[1]))  # similar lengths together: less padding
        out: list[list[Generation]] = [[] for _ in prompts]
        sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
        starts = range(0, len(jobs), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="generating", unit="batch")
        was_training = self.model.training
        self.model.eval()
        eos = eos_ids(tok, self.model)
        for start in starts:
            chunk = jobs[start: start + batch_size]
            batch = tok([p for _, p in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(self.device)
            kwargs = dict(do_sample=temperature > 0, max_new_tokens=max_new_tokens,
                          pad_token_id=tok.pad_token_id, eos_token_id=eos, output_scores=True,
                          return_dict_in_generate=True)
            if temperature > 0:
                kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
            with torch.no_grad():
                result = self.model.generate(**batch, **kwargs)
            new = result.sequences[:, batch["input_ids"].shape[1]:]                         # (B, T_new)
            # log-probs of the sampled tokens under the processed (temperature/top-p) distribution
            scores = torch.stack(result.scores, dim=1).float().log_softmax(-1)             # (B, T_new, V)
            token_lp = scores.gather(-1, new.unsqueeze(-1)).squeeze(-1)                     # (B, T_new)
            for row, (i, _) in enumerate(chunk):
                ids = new[row].tolist()
                length = next((k + 1 for k, t in enumerate(ids) if t in eos), None)
                finished = length is not None
                length = length or len(ids)
                text = tok.decode(ids[:length], skip_special_tokens=True).strip()
                out[i].append(Generation(text, ids[:length], token_lp[row, :length].tolist(), finished,
                                         dict(sampling)))
        self.model.train(was_training)
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
