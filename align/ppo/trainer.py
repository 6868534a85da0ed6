"""`align ppo`: our PPO for LoRA policies (TRL removed its PPOTrainer in 1.13).

One base model holds everything (`PolicyWithValue`): the policy is a LoRA adapter, the value function
a linear head on the policy's last hidden state, the reference the same base with the adapter
disabled. Each update: sample a batch of responses (left-padded prompts, stop at EOS) → score them
(a reward model's text-level `score`, so its tokenizer may differ, or any `f(prompts, responses)`)
→ per-token KL-penalised rewards → GAE → `ppo_epochs` passes of clipped policy + value losses over
minibatches. Checkpoints hold adapter, value head, optimizer, KL controller, RNG states and step, so
that a resumed run continues exactly.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from align.ppo.config import PPOConfig
from align.ppo.loss import (AdaptiveKLController, FixedKLController, entropy_from_logits, gae,
                            kl_penalized_rewards, masked_mean, policy_loss, value_loss, whiten)
from reward.errors import AlignError

__all__ = ["PPOTrainer", "PolicyWithValue", "train_ppo", "TrainingStopped"]


class TrainingStopped(AlignError):
    """Training stopped on a guard (non-finite loss, KL bound); the message says which and where the
    last good checkpoint is."""


class PolicyWithValue(torch.nn.Module):
    """A peft LoRA causal LM plus a value head on its last hidden state (one base for everything)."""

    def __init__(self, model, value_backbone=None, share_prefix: bool = True):
        """`value_backbone`: a separate model (with its own adapter) under the value head; None puts the
        head on the policy's own hidden states (one base for everything). `share_prefix`: forward the
        prompt tokens that every row of a batch starts with once (see `forward`)."""
        super().__init__()
        self.model = model
        self.value_backbone = value_backbone
        self.share_prefix = share_prefix
        hidden = model.config.get_text_config().hidden_size if hasattr(model.config, "get_text_config") \
            else model.config.hidden_size
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(model.parameters()).device)

    def forward(self, input_ids, attention_mask, start: int, *, with_values: bool = True):
        """(logits (B, T, V) that predict the tokens input_ids[:, start:], values (B, T) of the states
        before each of them, or None). Logits are computed for those T positions only (`logits_to_keep`):
        the prompt's would cost a fifth of the forward and a copy of (B, P, V) floats for nothing.

        Rows are left-padded prompts followed by responses. When every row's prompt starts with the same
        S tokens (a chat template's system prompt, an instruction), those go through the model once, as a
        batch of one whose keys and values every row then attends to (gradients flow back through them):
        the same function, S/L less work."""
        T = input_ids.shape[1] - start
        shared_value = with_values and self.value_backbone is None
        S = _common_prefix(input_ids, attention_mask, start) if self.share_prefix else 0
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        kwargs = dict(output_hidden_states=shared_value, logits_to_keep=T + 1)
        if S:
            pads = (attention_mask.long().cumsum(-1) == 0).sum(-1, keepdim=True)        # (B, 1) left pads
            prefix = input_ids[:1, pads[0, 0]:pads[0, 0] + S]
            cache = self.model(input_ids=prefix, position_ids=torch.arange(S, device=prefix.device)[None],
                               use_cache=True).cache
            cache.batch_repeat_interleave(len(input_ids))
            cols = torch.arange(input_ids.shape[1] - S, device=input_ids.device)[None]
            cols = cols + S * (cols >= pads)                                    # each row without its prefix
            ones = attention_mask.new_ones(len(input_ids), S)
            out = self.model(input_ids=input_ids.gather(1, cols), position_ids=position_ids.gather(1, cols),
                             attention_mask=torch.cat([ones, attention_mask.gather(1, cols)], 1),
                             cache=cache, use_cache=True, **kwargs)
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=False, **kwargs)
        values = None
        if with_values:
            values = self.values_of(out.hidden_states[-1][:, start - S - 1:-1]) if shared_value \
                else self.backbone_values(input_ids, attention_mask, start)
        return out.logits[:, :-1], values

    def backbone_values(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """Values (B, T) from the separate value model (`value_model: separate`)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.value_backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  output_hidden_states=True, use_cache=False, logits_to_keep=1)
        return self.values_of(out.hidden_states[-1][:, start - 1:-1])

    def values_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """The value head on last-layer hidden states (..., H) -> (...)."""
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)

    def reference(self):
        """Context in which the model is the reference (the base, adapter disabled)."""
        return self.model.disable_adapter()


def _common_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int, minimum: int = 8) -> int:
    """How many tokens every row's prompt (left-padded, ending at `start`) starts with, keeping at least
    one prompt token per row apart; 0 when fewer than `minimum` or only one row."""
    if len(input_ids) < 2:
        return 0
    pads = (attention_mask[:, :start].long().cumsum(-1) == 0).sum(-1)             # (B,) left pads
    limit = start - int(pads.max()) - 1                                          # shortest prompt - 1
    if limit < minimum:
        return 0
    aligned = input_ids.gather(1, pads[:, None] + torch.arange(limit, device=input_ids.device)[None])
    same = (aligned == aligned[:1]).all(0).long().cumprod(0)
    S = int(same.sum())
    return S if S >= minimum else 0


@contextmanager
def folded_adapter(model):
    """Sample faster: while inside, each LoRA layer's update B·A·scale is folded into a fresh copy of its
    base weight and the adapter branch is off, so a decoding step runs one matmul per layer instead of
    three (measured: 3.7 → 3.1 s for 8 × 40 tokens of SmolLM2-135M on this CPU). The base tensors are put back untouched on exit: no merge/unmerge round trip, whose float error
    would move the reference. Quantized bases are left as they are (their weights cannot take a delta)."""
    from peft.tuners.lora import LoraLayer

    swapped = []
    for module in model.modules():
        if isinstance(module, LoraLayer) and type(module.get_base_layer()) is torch.nn.Linear and not module.merged:
            base = module.get_base_layer()
            delta = sum(module.get_delta_weight(name) for name in module.active_adapters if name in module.lora_A)
            swapped.append((base, base.weight))
            base.weight = torch.nn.Parameter(base.weight.detach() + delta.to(base.weight.dtype), requires_grad=False)
    try:
        with model.disable_adapter() if swapped else nullcontext():
            yield
    finally:
        for base, weight in swapped:
            base.weight = weight


def _logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π(token) (B, T) from the logits (B, T, V) that predict `tokens` (B, T), at the sampling temperature."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _stack(chunks: list[dict], pad_id: int, device) -> dict:
    """One batch from rollout chunks of different prompt and response lengths: prompts left-padded and
    responses right-padded to the longest (padding is masked out)."""
    import torch.nn.functional as F

    P = max(c["prompt_ids"].shape[1] for c in chunks)
    T = max(c["response"].shape[1] for c in chunks)
    out = {}
    for key in chunks[0]:
        if key == "texts":
            out[key] = [t for c in chunks for t in c[key]]
            continue
        parts = []
        for c in chunks:
            x = c[key].to(device)
            if key.startswith("prompt_"):
                x = F.pad(x, (P - x.shape[1], 0), value=pad_id if key == "prompt_ids" else 0)
            elif x.dim() == 2:
                x = F.pad(x, (0, T - x.shape[1]), value=pad_id if key == "response" else 0)
            parts.append(x)
        out[key] = torch.cat(parts)
    return out


class PPOTrainer:
    def __init__(self, config: PPOConfig, *, reward_fn: Callable | None = None, prompts: list | None = None):
        from transformers import set_seed

        from align.distributed import Processes
        from align.policy import load_policy
        from reward.candidates import read_prompts
        from reward.judges import load_reward_function

        self.config = config
        self.processes = Processes()
        set_seed(config.seed)                           # before the adapter and the value head are made
        model, self.tokenizer = load_policy(config, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        value_backbone = load_policy(config)[0] if config.value_model == "separate" else None
        # The shared-prefix forward runs through a KV cache, which activation checkpointing switches off.
        self.policy = PolicyWithValue(model, value_backbone,
                                      share_prefix=config.share_prompt_prefix and not config.gradient_checkpointing)
        if config.quantization == "none":               # a quantized base is placed by its loader
            self.policy.to(self.processes.device)
        # Dropout off, and the modules left in training mode for good: PPO's ratios need the network that
        # sampled to be the one that is updated, and bitsandbytes' CPU backend repacks 4-bit weights
        # for inference on an eval-mode no-grad forward, after which a training forward fails.
        for module in self.policy.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        self.policy.train()
        self.device = next(model.parameters()).device
        self.reward_fn = reward_fn or load_reward_function(config.reward_model, device=self.device)
        self.prompts = prompts if prompts is not None else read_prompts(config.prompts)
        world = self.processes.world
        if len(self.prompts) < config.per_device_train_batch_size * world:
            raise AlignError(f"{config.prompts}: {len(self.prompts)} prompts, fewer than one update's "
                             f"{config.per_device_train_batch_size * world} (per_device_train_batch_size = "
                             f"{config.per_device_train_batch_size} × {world} processes).")
        trainable = [p for m in (model, value_backbone) if m is not None for p in m.parameters() if p.requires_grad]
        self.trainable = trainable + list(self.policy.value_head.parameters())
        self.processes.broadcast(self.trainable)        # every process starts from rank 0's adapter and head
        self.optimizer = torch.optim.AdamW([
            {"params": trainable, "lr": config.learning_rate},
            {"params": list(self.policy.value_head.parameters()),
             "lr": config.learning_rate * config.value_head_lr_scale}], eps=1e-5)
        self.kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon) \
            if config.adaptive_kl else FixedKLController(config.kl_coef)
        self.step = 0
        eos = {self.tokenizer.eos_token_id}
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = sorted(e for e in eos if e is not None)
        self.history: list[dict] = []
        self._writer = None

    # -- data -------------------------------------------------------------------------------------

    def _batch_prompts(self, step: int) -> list:
        """The prompts of update `step` (all processes'): a seeded shuffle per pass over the prompts, so
        that a resumed run draws exactly the same batches."""
        b = self.config.per_device_train_batch_size * self.processes.world
        per_epoch = len(self.prompts) // b
        epoch, index = divmod(step, per_epoch)
        order = list(range(len(self.prompts)))
        random.Random(self.config.seed + epoch).shuffle(order)
        return [self.prompts[i] for i in order[index * b:(index + 1) * b]]

    def _encode_prompts(self, prompts: list) -> dict:
        tok = self.tokenizer
        texts = [tok.apply_chat_template([{"role": "user", "content": p}] if isinstance(p, str) else list(p),
                                         tokenize=False, add_generation_prompt=True) for p in prompts]
        tok.padding_side, tok.truncation_side = "left", "left"
        return tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_prompt_length,
                   add_special_tokens=False).to(self.device)

    def _autocast(self):
        mp = self.config.mixed_precision
        if mp in ("bf16", "fp16") or (mp == "auto" and self.device.type == "cpu"):
            dtype = torch.float16 if mp == "fp16" else torch.bfloat16
            return torch.autocast(self.device.type, dtype=dtype)
        return nullcontext()

    # -- one update -------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, prompts: list) -> dict:
        """Sample and score the update's `prompts` (all processes'): this process takes its share, in
        chunks of `generation_batch_size`, and every process gets every rollout back; then KL-penalised
        rewards, advantages (GAE) and returns, whitened over the whole update."""
        cfg, processes = self.config, self.processes
        size = cfg.generation_batch_size or cfg.per_device_train_batch_size
        share = len(prompts) // processes.world
        first = processes.rank * share
        chunks = [self._rollout_chunk(prompts[i:i + size], chunk=i // size)
                  for i in range(first, first + share, size)]
        data = _stack(processes.gather(chunks), self.tokenizer.pad_token_id, self.device)
        mask = data["mask"]
        rewards, kl = kl_penalized_rewards(data["scores"], data["logprobs"], data["ref_logprobs"], mask,
                                           self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, data["values"], mask, cfg.gamma, cfg.lam)
        data.update(input_ids=torch.cat([data["prompt_ids"], data["response"]], 1),
                    attention_mask=torch.cat([data["prompt_mask"], mask.long()], 1),
                    prompt_length=data["prompt_ids"].shape[1], advantages=whiten(advantages, mask),
                    returns=returns, kl=kl, rewards=rewards)
        return data

    def _rollout_chunk(self, prompts: list, chunk: int) -> dict:
        """Sample responses to `prompts`, score them, and keep what the update needs: the sampling
        policy's log-probs and values (read off the generation itself: no second forward), and the
        reference's log-probs. Sampling is seeded by (seed, update, chunk), so that the rollouts do not
        depend on how many processes share the update, nor on what ran before a resume."""
        cfg, tok = self.config, self.tokenizer
        batch = self._encode_prompts(prompts)
        P = batch["input_ids"].shape[1]
        shared_value = self.policy.value_backbone is None
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), self._autocast(), folded_adapter(self.policy.model):
            torch.manual_seed(((cfg.seed * 1_000_003 + self.step) * 10_007 + chunk) % 2**63)
            out = self.policy.model.generate(
                **batch, do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0,
                max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=self.eos_ids,
                return_dict_in_generate=True, output_logits=True, output_hidden_states=shared_value)
        response = out.sequences[:, P:]                                          # (b, T)
        is_eos = torch.isin(response, torch.tensor(self.eos_ids, device=response.device))
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0                       # past the first EOS
        mask = (~after_eos).float()
        finished = is_eos.any(1)
        response = response.masked_fill(after_eos, tok.pad_token_id)
        texts = [tok.decode(r[m.bool()], skip_special_tokens=True).strip() for r, m in zip(response, mask)]
        scores = torch.tensor([float(s) for s in self.reward_fn(prompts, texts)], dtype=torch.float32)
        if len(scores) != len(texts):
            raise AlignError(f"the reward function returned {len(scores)} scores for {len(texts)} responses.")
        scores = scores.to(self.device) - cfg.missing_eos_penalty * (~finished).float()
        logprobs = _logprobs(torch.stack(out.logits, 1), response, cfg.temperature)
        input_ids = torch.cat([batch["input_ids"], response], 1)
        attention = torch.cat([batch["attention_mask"], mask.long()], 1)
        with self._autocast():
            if shared_value:            # step t's last hidden state is the state before response token t
                values = self.policy.values_of(torch.stack([h[-1][:, -1] for h in out.hidden_states], 1))
            else:
                values = self.policy.backbone_values(input_ids, attention, P)
            with self.policy.reference():
                ref_logprobs = _logprobs(self.policy(input_ids, attention, P, with_values=False)[0], response,
                                         cfg.temperature)
        return {"prompt_ids": batch["input_ids"], "prompt_mask": batch["attention_mask"], "response": response,
                "mask": mask, "logprobs": logprobs * mask, "ref_logprobs": ref_logprobs.float() * mask,
                "values": values.float() * mask, "scores": scores, "finished": finished, "texts": texts}

    _TRACKED = ("loss/total", "loss/policy", "loss/value", "policy/clipfrac", "policy/approxkl", "val/clipfrac",
                "val/error", "objective/entropy")

    def update(self, data: dict) -> dict:
        """`ppo_epochs` passes of minibatch gradient steps over one update's rollouts. Each process takes
        its share of every minibatch, in micro-batches whose token-mean losses are weighted by their
        share of the minibatch's tokens; gradients are accumulated and summed over processes, so the
        step is the one-process, one-forward step whatever the layout."""
        cfg, processes = self.config, self.processes
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        totals = []
        for _ in range(cfg.ppo_epochs):
            for minibatch in torch.randperm(len(data["mask"]), generator=gen).split(cfg.mini_batch_size * processes.world):
                minibatch = minibatch.to(self.device)
                tokens = data["mask"][minibatch].sum().clamp(min=1)
                self.optimizer.zero_grad(set_to_none=True)
                tracked = sum(self._micro_step(data, idx, tokens) for idx in
                              minibatch.tensor_split(processes.world)[processes.rank].split(cfg.micro_batch_size))
                tracked = processes.sum_gradients(self.trainable, tracked)
                if not torch.isfinite(tracked[0]):
                    raise TrainingStopped(f"non-finite loss ({tracked[0].item()}) at update {self.step + 1}: policy "
                                          f"loss {tracked[1].item()}, value loss {tracked[2].item()}. This gradient "
                                          f"step was not applied; the last good checkpoint is "
                                          f"{self.last_checkpoint() or 'none yet'}. Lower learning_rate, or check "
                                          f"the reward function's outputs.")
                torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
                self.optimizer.step()
                totals.append(tracked.cpu())
        means = torch.stack(totals).mean(0)
        return {name: float(v) for name, v in zip(self._TRACKED, means) if name != "loss/total"}

    def _micro_step(self, data: dict, idx: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Forward and backward of the rollouts `idx`, weighted by their share of the minibatch's `tokens`;
        returns the weighted losses and statistics (`_TRACKED`)."""
        cfg, P = self.config, data["prompt_length"]
        mask = data["mask"][idx]
        weight = mask.sum() / tokens
        with self._autocast():
            logits, values = self.policy(data["input_ids"][idx], data["attention_mask"][idx], P)
        logprobs = _logprobs(logits, data["input_ids"][idx, P:], cfg.temperature)
        with torch.no_grad():
            entropy = masked_mean(entropy_from_logits(logits.float()), mask)
        del logits
        pg, pg_stats = policy_loss(logprobs, data["logprobs"][idx], data["advantages"][idx], mask, cfg.cliprange)
        vf, vf_stats = value_loss(values.float(), data["values"][idx], data["returns"][idx], mask, cfg.cliprange_value)
        loss = pg + cfg.vf_coef * vf
        (loss * weight).backward()
        return torch.stack([loss, pg, vf, pg_stats["clipfrac"], pg_stats["approxkl"], vf_stats["clipfrac"],
                            vf_stats["error"], entropy]).detach() * weight

    def train_step(self) -> dict:
        cfg = self.config
        data = self.rollout(self._batch_prompts(self.step))
        if not torch.isfinite(data["scores"]).all():
            raise TrainingStopped(f"the reward function returned a non-finite score at update {self.step + 1}; "
                                  f"the last good checkpoint is {self.last_checkpoint() or 'none yet'}.")
        metrics = self.update(data)
        mask = data["mask"]
        kl_per_seq = data["kl"].sum(1).mean().item()
        metrics.update({
            "objective/kl": kl_per_seq,
            "objective/kl_coef": self.kl_ctl.value,
            "objective/non_score_reward": (-self.kl_ctl.value * data["kl"]).sum(1).mean().item(),
            "objective/scores": data["scores"].mean().item(),
            "rewards/mean": data["scores"].mean().item(),
            "rewards/std": data["scores"].std().item() if len(data["scores"]) > 1 else 0.0,
            "val/vpred": masked_mean(data["values"], mask).item(),
            "val/returns": masked_mean(data["returns"], mask).item(),
            "response/length": mask.sum(1).mean().item(),
            "response/eos_rate": data["finished"].float().mean().item(),
        })
        self.kl_ctl.update(kl_per_seq, len(data["scores"]))
        self.step += 1
        metrics["step"] = self.step
        metrics["sample"] = data["texts"][0][:200]
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------

    def last_checkpoint(self) -> str | None:
        """The newest checkpoint (complete by construction: `save_checkpoint` renames a finished folder)."""
        from reward.training_args import last_checkpoint

        return last_checkpoint(self.config.output_dir)

    def save_checkpoint(self) -> str:
        out = Path(self.config.output_dir)
        final = out / f"checkpoint-{self.step}"
        tmp = out / f".tmp-checkpoint-{self.step}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.policy.model.save_pretrained(tmp)
        torch.save(self.policy.value_head.state_dict(), tmp / "value_head.pt")
        if self.policy.value_backbone is not None:
            self.policy.value_backbone.save_pretrained(tmp / "value_adapter")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        import numpy as np

        torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": self.step, "kl_controller": self.kl_ctl.state_dict(),
                                                            "history": self.history}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)                            # a checkpoint is complete or absent, never half-written
        kept = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        for old in kept[:-self.config.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
        return str(final)

    def load_checkpoint(self, path: str) -> None:
        import numpy as np
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        path = Path(path)
        set_peft_model_state_dict(self.policy.model, load_file(str(path / "adapter_model.safetensors")))
        self.policy.value_head.load_state_dict(torch.load(path / "value_head.pt"))
        if self.policy.value_backbone is not None:
            set_peft_model_state_dict(self.policy.value_backbone,
                                      load_file(str(path / "value_adapter" / "adapter_model.safetensors")))
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt"))
        state = json.loads((path / "trainer_state.json").read_text())
        self.step, self.history = state["step"], state["history"]
        self.kl_ctl.load_state_dict(state["kl_controller"])
        rng = torch.load(path / "rng.pt", weights_only=False)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # -- the loop ---------------------------------------------------------------------------------

    def _log(self, metrics: dict) -> None:
        cfg = self.config
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}
        if cfg.report_to == "tensorboard":
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(cfg.output_dir) / "runs"))
            for k, v in scalars.items():
                self._writer.add_scalar(k, v, self.step)
        elif cfg.report_to == "wandb":
            import wandb

            if wandb.run is None:
                wandb.init(project="align-toolkit", config=asdict(cfg))
            wandb.log(scalars, step=self.step)

    def train(self) -> str:
        from tqdm.auto import tqdm

        cfg = self.config
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and (ckpt := self.last_checkpoint()):
            self.load_checkpoint(ckpt)
        main = self.processes.is_main                   # only rank 0 writes; every rank trains
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="ppo", unit="update", disable=not main)
        stopped = None
        while self.step < cfg.max_steps:
            metrics = self.train_step()                 # the same metrics on every rank (whole-update data)
            self.history.append({k: v for k, v in metrics.items() if k != "sample"})
            if main and self.step % cfg.logging_steps == 0:
                self._log(metrics)
            bar.set_postfix(reward=f"{metrics['rewards/mean']:.3f}", kl=f"{metrics['objective/kl']:.2f}")
            bar.update(1)
            if cfg.kl_stop is not None and metrics["objective/kl"] > cfg.kl_stop:
                stopped = (f"KL {metrics['objective/kl']:.2f} passed kl_stop = {cfg.kl_stop} at update {self.step}; "
                           f"stopped early")
            if main and (stopped or self.step % cfg.save_steps == 0 or self.step == cfg.max_steps):
                self.save_checkpoint()
            if stopped:
                break
        bar.close()
        if main:
            if self._writer is not None:
                self._writer.close()
            self.save(out)
            (out / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in self.history))
            plot_history(self.history, out / "ppo_curves.png")
            if stopped:
                print(f"align ppo: {stopped}; checkpoint and adapter saved in {out}")
        self.processes.barrier()                        # no rank returns before rank 0 has written
        return str(out)

    def save(self, directory: str | Path) -> None:
        """The adapter (and tokenizer, value head) in `directory`: `Policy.from_pretrained(directory)` loads it."""
        from reward.training_args import record_base_model

        self.policy.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        torch.save(self.policy.value_head.state_dict(), Path(directory) / "value_head.pt")
        record_base_model(str(directory), self.config.model)


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


def train_ppo(config: PPOConfig) -> str:
    return PPOTrainer(config).train()
