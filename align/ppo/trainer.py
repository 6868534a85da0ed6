"""`align ppo`: our PPO for LoRA policies (TRL removed its PPOTrainer in 1.13).

One base model holds everything (`PolicyWithValue`, in `model.py`): the policy is a LoRA adapter, the
value function a linear head on the policy's last hidden state, the reference the same base with the
adapter disabled. Each update: sample a batch of responses through the generation engine (`align.rollout`;
stop at EOS) → score them
(a reward model's text-level `score`, so its tokenizer may differ, or any `f(prompts, responses)`)
→ per-token KL-penalised rewards → GAE → `ppo_epochs` passes of clipped policy + value losses over
minibatches. Checkpoints hold adapter, value head, optimizer, KL controller, RNG states and step, so
that a resumed run continues exactly.
"""

from __future__ import annotations

import json
import os
import random
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from align.ppo.checkpoints import load_checkpoint, save_checkpoint
from align.ppo.config import PPOConfig
from align.ppo.loss import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_penalized_rewards,
    masked_mean,
    policy_loss,
    sampler_kl,
    value_loss,
    whiten,
)
from align.ppo.metrics import MetricsSink, plot_history
from align.ppo.model import PolicyWithValue, compile_layers
from align.rollout import SamplingParams, make_sampler
from foundation.errors import AlignError, ConfigError
from foundation.models import eos_ids
from foundation.precision import autocast_dtype
from foundation.records import as_chat

__all__ = ["PPOTrainer", "train_ppo", "TrainingStopped"]


class TrainingStopped(AlignError):
    """Training stopped on a guard (non-finite loss, KL bound); the message says which and where the
    last good checkpoint is."""


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
        from foundation.candidates import read_prompts
        from reward.functions import load_reward_function

        if prompts is None and config.prompts is None:
            raise ConfigError("`prompts` must name a prompts file (--prompts FILE), got None.")
        self.config = config
        self.processes = Processes()
        set_seed(config.seed)                           # before the adapter and the value head are made
        model, self.tokenizer = load_policy(config, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # a separate value model gets a fresh adapter of its own, never the policy's (`adapter`)
        value_backbone = load_policy(replace(config, adapter=None))[0] if config.value_model == "separate" \
            else None
        if config.torch_compile:
            self._check_compiler()
        for m in (model, value_backbone):
            if m is not None:
                self._for_autocast(m)
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
        self.history: list[dict] = []

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
        texts = [tok.apply_chat_template(as_chat(p),
                                         tokenize=False, add_generation_prompt=True) for p in prompts]
        tok.padding_side, tok.truncation_side = "left", "left"
        return tok(texts, return_tensors="pt", padding=True, truncation=True,
                   max_length=self.config.max_prompt_length, add_special_tokens=False).to(self.device)

    def _autocast_dtype(self):
        """The autocast dtype that `mixed_precision` asks for on this device, or None (fp32)."""
        return autocast_dtype(self.config.mixed_precision, self.processes.device.type)

    def _check_compiler(self) -> None:
        import shutil

        if self.processes.device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
            raise ConfigError("torch_compile: true needs a C++ compiler on a CPU (torch.compile's inductor "
                              "writes C++ kernels): install one (apt-get install g++, or set CXX), or set "
                              "torch_compile: false.")
        import torch._functorch.config as functorch_config

        if self.config.activation_memory_budget < 1 and not hasattr(functorch_config,
                                                                     "activation_memory_budget"):
            raise ConfigError(f"activation_memory_budget: {self.config.activation_memory_budget} needs a "
                              f"torch with torch._functorch.config.activation_memory_budget (2.4 or newer; "
                              f"this is {torch.__version__}): upgrade torch, or set "
                              f"activation_memory_budget: 1.")

    def _for_autocast(self, model) -> None:
        """Under autocast, peft's casts of every LoRA input to the adapter's fp32 (which autocast then
        casts back to bf16 for the matmul) are only copies: off. On a CPU in bf16, plain attention:
        PyTorch's CPU flash-attention backward is slow in bf16 (plain attention makes a forward +
        backward of 8 x 75 tokens through SmolLM2-135M 1.25x faster; in fp32 the two are equal)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        dtype = self._autocast_dtype()
        if dtype is None:
            return
        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False
        if self.processes.device.type == "cpu" and dtype == torch.bfloat16:
            model.get_base_model().set_attn_implementation("eager")

    def _forward(self):
        """Context of every forward of the training model: autocast as `mixed_precision` says and, with
        `torch_compile`, the activation memory budget that the compiler partitions its graphs by (set
        here rather than for the whole process, whose other compiled code it would change)."""
        stack = ExitStack()
        dtype = self._autocast_dtype()
        if dtype:
            stack.enter_context(torch.autocast(self.device.type, dtype=dtype))
        if self.config.torch_compile and self.config.activation_memory_budget < 1:
            import torch._functorch.config as functorch_config

            stack.enter_context(functorch_config.patch(
                activation_memory_budget=self.config.activation_memory_budget))
        return stack

    # -- one update -------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, prompts: list) -> dict:
        """Sample and score the update's `prompts` (all processes'): this process takes its share, in
        chunks of `generation_batch_size`, and every process gets every rollout back; then KL-penalised
        rewards, advantages (GAE) and returns, whitened over the whole update. The old log-probs and
        values of the update's first minibatch are left to its first forward (`_deferred_rows`): the
        rewards and advantages wait for it (`data["pending"]`)."""
        from foundation.allocator import release_freed_memory

        cfg, processes = self.config, self.processes
        release_freed_memory()          # what the last update freed, before the engine's snapshot is taken
        size = cfg.generation_batch_size or cfg.per_device_train_batch_size
        share = len(prompts) // processes.world
        first = processes.rank * share
        deferred = self._deferred_rows(len(prompts))
        chunks = [self._rollout_chunk(prompts[i:i + size], chunk=i // size, offset=i, deferred=deferred)
                  for i in range(first, first + share, size)]
        self.sampler.refresh()          # drop the engine's snapshot: memory for the update, new weights next
        release_freed_memory()          # and hand it back, with the sampling's, before the update allocates
        data = _stack(processes.gather(chunks), self.tokenizer.pad_token_id, self.device)
        data.update(input_ids=torch.cat([data["prompt_ids"], data["response"]], 1),
                    attention_mask=torch.cat([data["prompt_mask"], data["mask"].long()], 1),
                    prompt_length=data["prompt_ids"].shape[1], pending=bool(deferred))
        if not deferred:
            self._advantages(data)
        return data

    def _minibatches(self, n: int):
        """The update's minibatches of its `n` rollouts, epoch after epoch: a seeded shuffle per epoch."""
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        for _ in range(cfg.ppo_epochs):
            yield from torch.randperm(n, generator=gen).split(cfg.mini_batch_size * self.processes.world)

    def _deferred_rows(self, n: int) -> set[int]:
        """Rows whose old log-probs and values the update's first forward gives: the first minibatch's,
        when every process forwards its share of it in one micro-batch. Until its first optimizer step
        the policy is the one that sampled, so that forward (with gradients) computes exactly what a
        separate forward without them would, and the rollout skips that one (all of the rollouts' when
        one minibatch holds them all, as in the PPO benchmark: 7.6 against 8.4 s an update there)."""
        if self.config.mini_batch_size > self.config.micro_batch_size:
            return set()
        return set(next(self._minibatches(n)).tolist())

    def _advantages(self, data: dict) -> None:
        """KL-penalised rewards, advantages (GAE) and returns from the old log-probs and values."""
        cfg, mask = self.config, data["mask"]
        rewards, kl = kl_penalized_rewards(data["scores"], data["logprobs"], data["ref_logprobs"], mask,
                                           self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, data["values"], mask, cfg.gamma, cfg.lam)
        data.update(advantages=whiten(advantages, mask), returns=returns, kl=kl, rewards=rewards,
                    pending=False)

    def _complete(self, data: dict, idx: torch.Tensor, logprobs: torch.Tensor, values: torch.Tensor) -> None:
        """The first forward of the update has given the old log-probs and values of its rows `idx` (on
        every process, its own): gather them, then the rewards and advantages of the whole update."""
        mask = data["mask"][idx]
        parts = self.processes.gather([(idx.cpu(), (logprobs.detach().float() * mask).cpu(),
                                        (values.detach().float() * mask).cpu())])
        for rows, lp, v in parts:
            rows = rows.to(self.device)
            data["logprobs"][rows] = lp.to(self.device)
            data["values"][rows] = v.to(self.device)
        self._advantages(data)

    def _rollout_chunk(self, prompts: list, chunk: int, offset: int, deferred: set[int]) -> dict:
        """Sample responses to `prompts` through the generation engine, score them, and keep what the
        update needs: the training model's own log-probs and values (one forward: the engine's bf16
        weights or kernels may differ, so its log-probs only measure that difference, `rollout/
        sampler_kl`), and the reference's log-probs. Sampling is seeded by (seed, update, chunk), so that
        the rollouts do not depend on how many processes share the update, nor on what ran before a
        resume. The chunk's rows are rows `offset`... of the update; those in `deferred` get their
        log-probs and values from the update's first forward (zeros here)."""
        cfg, tok = self.config, self.tokenizer
        batch = self._encode_prompts(prompts)
        P = batch["input_ids"].shape[1]
        prompt_ids = [row[m.bool()].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(((cfg.seed * 1_000_003 + self.step) * 10_007 + chunk) % 2**63)
            completions = [c[0] for c in self.sampler.sample(prompt_ids, SamplingParams(
                temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens))]
        T = max(len(c.token_ids) for c in completions)
        response = torch.full((len(prompts), T), tok.pad_token_id, dtype=torch.long)
        sampler_lp = torch.zeros(len(prompts), T)
        mask = torch.zeros(len(prompts), T)
        for row, c in enumerate(completions):
            response[row, :len(c.token_ids)] = torch.tensor(c.token_ids)
            sampler_lp[row, :len(c.token_ids)] = torch.tensor(c.logprobs)
            mask[row, :len(c.token_ids)] = 1.0
        response, sampler_lp, mask = (t.to(self.device) for t in (response, sampler_lp, mask))
        finished = torch.tensor([c.finished for c in completions], device=self.device)
        texts = [tok.decode(c.token_ids, skip_special_tokens=True).strip() for c in completions]
        scores = torch.tensor([float(s) for s in self.reward_fn(prompts, texts)], dtype=torch.float32)
        if len(scores) != len(texts):
            raise AlignError(f"the reward function returned {len(scores)} scores for {len(texts)} responses.")
        scores = scores.to(self.device) - cfg.missing_eos_penalty * (~finished).float()
        input_ids = torch.cat([batch["input_ids"], response], 1)
        attention = torch.cat([batch["attention_mask"], mask.long()], 1)
        logprobs, values = torch.zeros_like(mask), torch.zeros_like(mask)
        now = torch.tensor([r for r in range(len(prompts)) if offset + r not in deferred], dtype=torch.long,
                           device=self.device)
        with self._forward():
            if len(now):
                lp, _, v = self.policy.logprobs(input_ids[now], attention[now], P, cfg.temperature)
                logprobs[now], values[now] = lp.float(), v.float()
            with self.policy.reference():
                ref_logprobs = self.policy.logprobs(input_ids, attention, P, cfg.temperature,
                                                    with_values=False)[0]
        return {"prompt_ids": batch["input_ids"], "prompt_mask": batch["attention_mask"],
                "response": response, "mask": mask, "logprobs": logprobs * mask,
                "sampler_logprobs": sampler_lp * mask, "ref_logprobs": ref_logprobs.float() * mask,
                "values": values * mask, "scores": scores, "finished": finished, "texts": texts}

    _TRACKED = ("loss/total", "loss/policy", "loss/value", "policy/clipfrac", "policy/approxkl",
                "val/clipfrac", "val/error", "objective/entropy")

    def update(self, data: dict) -> dict:
        """`ppo_epochs` passes of minibatch gradient steps over one update's rollouts. Each process takes
        its share of every minibatch, in micro-batches whose token-mean losses are weighted by their
        share of the minibatch's tokens; gradients are accumulated and summed over processes, so the
        step is the one-process, one-forward step whatever the layout."""
        cfg, processes = self.config, self.processes
        totals = []
        for minibatch in self._minibatches(len(data["mask"])):
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
        with self._forward():
            logprobs, entropy, values = self.policy.logprobs(
                data["input_ids"][idx], data["attention_mask"][idx], P, cfg.temperature)
        if data["pending"]:             # the update's first forward: at the policy that sampled
            self._complete(data, idx, logprobs, values)
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
        data = self.rollout(self._batch_prompts(self.step))
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
