"""PPO's experience: one update's rollouts, apart from the update that learns from them (as OpenRLHF's
experience maker and verl's rollout workers are).

For each update: the update's prompts (a seeded shuffle per pass over them) → responses sampled through
the generation engine (`align.rollout`; stop at EOS) → scores (a reward model's text-level `score`, so
its tokenizer may differ, or any `f(prompts, responses)`) → the training model's log-probs and values
and the reference's log-probs (one forward each) → per-token KL-penalised rewards → GAE advantages and
returns, whitened over the whole update. Under several processes each samples its share and every
process gets every rollout back.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F

from align.ppo.loss import gae, kl_penalized_rewards, whiten
from align.ppo.precision import forward_context
from align.rollout import SamplingParams
from foundation.allocator import release_freed_memory
from foundation.errors import AlignError
from foundation.records import as_chat

__all__ = ["Experience", "minibatches"]


def minibatches(config, world: int, step: int, n: int):
    """Update `step`'s minibatches of its `n` rollouts, epoch after epoch: a seeded shuffle per epoch."""
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    for _ in range(config.ppo_epochs):
        yield from torch.randperm(n, generator=gen).split(config.mini_batch_size * world)


class Experience:
    """Makes each update's rollouts for `policy` (a `PolicyWithValue`) from `prompts`."""

    def __init__(self, config, processes, policy, tokenizer, sampler, reward_fn: Callable, kl_ctl,
                 prompts: list, device: torch.device):
        self.config, self.processes, self.policy, self.tokenizer = config, processes, policy, tokenizer
        self.sampler, self.reward_fn, self.kl_ctl = sampler, reward_fn, kl_ctl
        self.prompts, self.device = prompts, device

    def prompts_for(self, step: int) -> list:
        """The prompts of update `step` (all processes'): a seeded shuffle per pass over the prompts, so
        that a resumed run draws exactly the same batches."""
        b = self.config.per_device_train_batch_size * self.processes.world
        epoch, index = divmod(step, len(self.prompts) // b)
        order = list(range(len(self.prompts)))
        random.Random(self.config.seed + epoch).shuffle(order)
        return [self.prompts[i] for i in order[index * b:(index + 1) * b]]

    @torch.no_grad()
    def make(self, prompts: list, step: int) -> dict:
        """Sample and score update `step`'s `prompts` (all processes'): this process takes its share, in
        chunks of `generation_batch_size`, and every process gets every rollout back; then KL-penalised
        rewards, advantages (GAE) and returns. The old log-probs and values of the update's first
        minibatch are left to its first forward (`deferred_rows`): the rewards and advantages wait for it
        (`data["pending"]`, until `complete`)."""
        cfg, processes = self.config, self.processes
        release_freed_memory()          # what the last update freed, before the engine's snapshot is taken
        size = cfg.generation_batch_size or cfg.per_device_train_batch_size
        share = len(prompts) // processes.world
        first = processes.rank * share
        deferred = self.deferred_rows(step, len(prompts))
        chunks = [self._chunk(prompts[i:i + size], step, chunk=i // size, offset=i, deferred=deferred)
                  for i in range(first, first + share, size)]
        self.sampler.refresh()          # drop the engine's snapshot: memory for the update, new weights next
        release_freed_memory()          # and hand it back, with the sampling's, before the update allocates
        data = _stack(processes.gather(chunks), self.tokenizer.pad_token_id, self.device)
        data.update(input_ids=torch.cat([data["prompt_ids"], data["response"]], 1),
                    attention_mask=torch.cat([data["prompt_mask"], data["mask"].long()], 1),
                    prompt_length=data["prompt_ids"].shape[1], pending=bool(deferred))
        if not deferred:
            self.advantages(data)
        return data

    def deferred_rows(self, step: int, n: int) -> set[int]:
        """Rows whose old log-probs and values the update's first forward gives: the first minibatch's,
        when every process forwards its share of it in one micro-batch. Until its first optimizer step
        the policy is the one that sampled, so that forward (with gradients) computes exactly what a
        separate forward without them would, and the rollout skips that one (all of the rollouts' when
        one minibatch holds them all, as in the PPO benchmark: 7.6 against 8.4 s an update there)."""
        if self.config.mini_batch_size > self.config.micro_batch_size:
            return set()
        return set(next(minibatches(self.config, self.processes.world, step, n)).tolist())

    def advantages(self, data: dict) -> None:
        """KL-penalised rewards, advantages (GAE) and returns from the old log-probs and values."""
        cfg, mask = self.config, data["mask"]
        rewards, kl = kl_penalized_rewards(data["scores"], data["logprobs"], data["ref_logprobs"], mask,
                                           self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, data["values"], mask, cfg.gamma, cfg.lam)
        data.update(advantages=whiten(advantages, mask), returns=returns, kl=kl, rewards=rewards,
                    pending=False)

    def complete(self, data: dict, idx: torch.Tensor, logprobs: torch.Tensor, values: torch.Tensor) -> None:
        """The first forward of the update has given the old log-probs and values of its rows `idx` (on
        every process, its own): gather them, then the rewards and advantages of the whole update."""
        mask = data["mask"][idx]
        parts = self.processes.gather([(idx.cpu(), (logprobs.detach().float() * mask).cpu(),
                                        (values.detach().float() * mask).cpu())])
        for rows, lp, v in parts:
            rows = rows.to(self.device)
            data["logprobs"][rows] = lp.to(self.device)
            data["values"][rows] = v.to(self.device)
        self.advantages(data)

    def _encode(self, prompts: list) -> dict:
        tok = self.tokenizer
        texts = [tok.apply_chat_template(as_chat(p), tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        tok.padding_side, tok.truncation_side = "left", "left"
        return tok(texts, return_tensors="pt", padding=True, truncation=True,
                   max_length=self.config.max_prompt_length, add_special_tokens=False).to(self.device)

    def _chunk(self, prompts: list, step: int, chunk: int, offset: int, deferred: set[int]) -> dict:
        """Sample responses to `prompts` through the generation engine, score them, and keep what the
        update needs: the training model's own log-probs and values (one forward: the engine's bf16
        weights or kernels may differ, so its log-probs only measure that difference, `rollout/
        sampler_kl`), and the reference's log-probs. Sampling is seeded by (seed, update, chunk), so that
        the rollouts do not depend on how many processes share the update, nor on what ran before a
        resume. The chunk's rows are rows `offset`... of the update; those in `deferred` get their
        log-probs and values from the update's first forward (zeros here)."""
        cfg, tok = self.config, self.tokenizer
        batch = self._encode(prompts)
        P = batch["input_ids"].shape[1]
        prompt_ids = [row[m.bool()].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(((cfg.seed * 1_000_003 + step) * 10_007 + chunk) % 2**63)
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
        with forward_context(cfg, self.device):
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


def _stack(chunks: list[dict], pad_id: int, device) -> dict:
    """One batch from rollout chunks of different prompt and response lengths: prompts left-padded and
    responses right-padded to the longest (padding is masked out)."""
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
