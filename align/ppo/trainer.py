"""`align ppo`: our PPO for LoRA policies (TRL removed its PPOTrainer in 1.13).

One base model holds everything (`PolicyWithValue`, in `model.py`): the policy is a LoRA adapter, the
value function a linear head on the policy's last hidden state, the reference the same base with the
adapter disabled. Each update: the update's rollouts with their KL-penalised rewards and GAE advantages
(`experience.py`) → `ppo_epochs` passes of clipped policy + value losses over minibatches (here).
Checkpoints hold adapter, value head, optimizer, KL controller, RNG states and step, so that a resumed
run continues exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from align.distributed import Processes
from align.policy import load_policy
from align.ppo.checkpoints import load_checkpoint, save_checkpoint
from align.ppo.config import PPOConfig
from align.ppo.experience import Experience, minibatches
from align.ppo.loss import (
    AdaptiveKLController,
    FixedKLController,
    masked_mean,
    policy_loss,
    sampler_kl,
    value_loss,
)
from align.ppo.metrics import MetricsSink, plot_history
from align.ppo.model import PolicyWithValue, compile_layers
from align.ppo.precision import base_dtype, check_compiler, forward_context, prepare_for_autocast
from align.rollout import make_sampler
from foundation.candidates import read_prompts
from foundation.errors import AlignError, ConfigError
from foundation.models import eos_ids
from reward.functions import load_reward_function

__all__ = ["PPOTrainer", "train_ppo", "TrainingStopped"]


class TrainingStopped(AlignError):
    """Training stopped on a guard (non-finite loss, KL bound); the message says which and where the
    last good checkpoint is."""


class PPOTrainer:
    def __init__(self, config: PPOConfig, *, reward_fn: Callable | None = None, prompts: list | None = None):
        from transformers import set_seed

        if prompts is None and config.prompts is None:
            raise ConfigError("`prompts` must name a prompts file (--prompts FILE), got None.")
        self.config = config
        self.processes = Processes()
        set_seed(config.seed)                           # before the adapter and the value head are made
        loading = replace(config, dtype=base_dtype(config, self.processes.device))
        model, self.tokenizer = load_policy(loading, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # a separate value model gets a fresh adapter of its own, never the policy's (`adapter`)
        value_backbone = load_policy(replace(loading, adapter=None))[0] if config.value_model == "separate" \
            else None
        if config.torch_compile:
            check_compiler(config, self.processes.device)
        for m in (model, value_backbone):
            if m is not None:
                prepare_for_autocast(m, config, self.processes.device)
                if config.torch_compile:
                    compile_layers(m)
        # The shared prefix's attention is switched on around a forward only; activation checkpointing
        # would recompute the layers in the backward, outside it.
        share_prefix = config.share_prompt_prefix and not config.gradient_checkpointing
        self.policy = PolicyWithValue(model, value_backbone, share_prefix=share_prefix)
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
        self.reward_fn = reward_fn or load_reward_function(config.reward_model, device=self.device,
                                                             batch_size=config.score_batch_size)
        self.prompts = prompts if prompts is not None else read_prompts(config.prompts)
        world = self.processes.world
        if len(self.prompts) < config.per_device_train_batch_size * world:
            raise AlignError(f"{config.prompts}: {len(self.prompts)} prompts, fewer than one update's "
                             f"{config.per_device_train_batch_size * world} (per_device_train_batch_size = "
                             f"{config.per_device_train_batch_size} × {world} processes).")
        trainable = [p for m in (model, value_backbone) if m is not None
                     for p in m.parameters() if p.requires_grad]
        self.trainable = trainable + list(self.policy.value_head.parameters())
        self.processes.broadcast(self.trainable)        # every process starts from rank 0's adapter and head
        # fused: one kernel over all the adapter's tensors (10 against 33 ms a step for SmolLM2's r=16 LoRA)
        self.optimizer = torch.optim.AdamW([
            {"params": trainable, "lr": config.learning_rate},
            {"params": list(self.policy.value_head.parameters()),
             "lr": config.learning_rate * config.value_head_lr_scale}], eps=1e-5,
            fused=self.device.type in ("cpu", "cuda"))
        self.kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon) \
            if config.adaptive_kl else FixedKLController(config.kl_coef)
        self.step = 0
        self.eos_ids = eos_ids(self.tokenizer, model)
        self.sampler = make_sampler(
            config.engine, model, pad_id=self.tokenizer.pad_token_id, eos=self.eos_ids,
            batch_size=config.generation_batch_size or config.per_device_train_batch_size,
            quiet=not self.processes.is_main)
        if config.torch_compile:    # the engine's own forwards (🤗 generate's cached steps) stay eager
            self.sampler.sample = torch.compiler.disable(self.sampler.sample)
        self.experience = Experience(config, self.processes, self.policy, self.tokenizer, self.sampler,
                                     self.reward_fn, self.kl_ctl, self.prompts, self.device)
        self.history: list[dict] = []

    # -- one update -------------------------------------------------------------------------------

    _TRACKED = ("loss/total", "loss/policy", "loss/value", "policy/clipfrac", "policy/approxkl",
                "val/clipfrac", "val/error", "objective/entropy")

    def update(self, data: dict) -> dict:
        """`ppo_epochs` passes of minibatch gradient steps over one update's rollouts. Each process takes
        its share of every minibatch, in micro-batches whose token-mean losses are weighted by their
        share of the minibatch's tokens; gradients are accumulated and summed over processes, so the
        step is the one-process, one-forward step whatever the layout."""
        cfg, processes = self.config, self.processes
        totals = []
        for minibatch in minibatches(cfg, processes.world, self.step, len(data["mask"])):
            minibatch = minibatch.to(self.device)
            tokens = data["mask"][minibatch].sum().clamp(min=1)
            self.optimizer.zero_grad(set_to_none=True)
            tracked = sum(self._micro_step(data, idx, tokens) for idx in
                          minibatch.tensor_split(processes.world)[processes.rank].split(cfg.micro_batch_size))
            tracked = processes.sum_gradients(self.trainable, tracked)
            if not torch.isfinite(tracked[0]):
                raise TrainingStopped(f"non-finite loss ({tracked[0].item()}) at update {self.step + 1}: "
                                      f"policy loss {tracked[1].item()}, value loss {tracked[2].item()}. "
                                      f"This gradient step was not applied; the last good checkpoint is "
                                      f"{self.last_checkpoint() or 'none yet'}. Lower learning_rate, "
                                      f"or check the reward function's outputs.")
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
        with forward_context(cfg, self.device):
            logprobs, entropy, values = self.policy.logprobs(
                data["input_ids"][idx], data["attention_mask"][idx], P, cfg.temperature)
        if data["pending"]:             # the update's first forward: at the policy that sampled
            self.experience.complete(data, idx, logprobs, values)
        entropy = masked_mean(entropy, mask)
        pg, pg_stats = policy_loss(logprobs, data["logprobs"][idx], data["advantages"][idx], mask,
                                   cfg.cliprange)
        vf, vf_stats = value_loss(values.float(), data["values"][idx], data["returns"][idx], mask,
                                  cfg.cliprange_value)
        loss = pg + cfg.vf_coef * vf
        (loss * weight).backward()
        return torch.stack([loss, pg, vf, pg_stats["clipfrac"], pg_stats["approxkl"], vf_stats["clipfrac"],
                            vf_stats["error"], entropy]).detach() * weight

    def train_step(self) -> dict:
        data = self.experience.make(self.experience.prompts_for(self.step), self.step)
        if not torch.isfinite(data["scores"]).all():
            raise TrainingStopped(f"the reward function returned a non-finite score at update "
                                  f"{self.step + 1}; the last good checkpoint is "
                                  f"{self.last_checkpoint() or 'none yet'}.")
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
            "rollout/sampler_kl": sampler_kl(data["sampler_logprobs"], data["logprobs"], mask),
        })
        self.kl_ctl.update(kl_per_seq, len(data["scores"]))
        self.step += 1
        metrics["step"] = self.step
        metrics["sample"] = data["texts"][0][:200]
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------

    def last_checkpoint(self) -> str | None:
        """The newest checkpoint (complete by construction: `save_checkpoint` renames a finished folder)."""
        from foundation.training import last_checkpoint

        return last_checkpoint(self.config.output_dir)

    def save_checkpoint(self) -> str:
        return save_checkpoint(Path(self.config.output_dir), self.step, self.policy, self.optimizer,
                               self.kl_ctl, self.history, keep=self.config.save_total_limit)

    def load_checkpoint(self, path: str) -> None:
        self.step, self.history = load_checkpoint(Path(path), self.policy, self.optimizer, self.kl_ctl)

    # -- the loop ---------------------------------------------------------------------------------

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
        sink = MetricsSink(cfg.report_to, out / "runs", asdict(cfg))
        while self.step < cfg.max_steps:
            metrics = self.train_step()                 # the same metrics on every rank (whole-update data)
            self.history.append({k: v for k, v in metrics.items() if k != "sample"})
            if main and self.step % cfg.logging_steps == 0:
                sink.log(metrics, self.step)
            bar.set_postfix(reward=f"{metrics['rewards/mean']:.3f}", kl=f"{metrics['objective/kl']:.2f}")
            bar.update(1)
            if cfg.kl_stop is not None and metrics["objective/kl"] > cfg.kl_stop:
                stopped = (f"KL {metrics['objective/kl']:.2f} passed kl_stop = {cfg.kl_stop} "
                           f"at update {self.step}; stopped early")
            if main and (stopped or self.step % cfg.save_steps == 0 or self.step == cfg.max_steps):
                self.save_checkpoint()
            if stopped:
                break
        bar.close()
        if main:
            sink.close()
            self.save(out)
            (out / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in self.history))
            plot_history(self.history, out / "ppo_curves.png")
            if stopped:
                print(f"align ppo: {stopped}; checkpoint and adapter saved in {out}")
        self.processes.barrier()                        # no rank returns before rank 0 has written
        return str(out)

    def save(self, directory: str | Path) -> None:
        """The adapter (and tokenizer, value head) in `directory`: `Policy.from_pretrained(directory)`
        loads it."""
        from foundation.cards import Lineage, changed_settings, write_card
        from foundation.training import record_base_model

        self.policy.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        torch.save(self.policy.value_head.state_dict(), Path(directory) / "value_head.pt")
        record_base_model(str(directory), self.config.model)
        config = self.config
        write_card(directory, Lineage(
            method="PPO", base_model=config.model, parent=config.adapter or config.merge_adapter,
            data={"prompts": config.prompts or "(given by the caller)", "reward": config.reward_model,
                  "updates": self.step},
            settings=changed_settings(config)))


def train_ppo(config: PPOConfig, *, prompts: list | None = None) -> str:
    """Train as `config` says, on `prompts` (chat messages or strings) or else `config.prompts`' file."""
    return PPOTrainer(config, prompts=prompts).train()
