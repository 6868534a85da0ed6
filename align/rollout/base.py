"""What every generation engine shares: the sampling parameters, a completion, the next-token draw
(temperature, top-p, greedy) and the `Sampler` interface that PPO, the loop, `align evaluate` and
`align generate` sample through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:                     # torch is imported where it is used: configs import this package
    import torch


@dataclass(frozen=True)
class SamplingParams:
    """`n` completions per prompt; `temperature=0` is greedy; top-p filters the tempered distribution."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int | None = None          # None: the global torch RNG (callers that fork it, as PPO does)


@dataclass
class Completion:
    """One sampled response: its token ids (up to and including EOS), the log-probability of each
    under the distribution it was drawn from (after temperature and top-p), and whether it ended
    with EOS (False: cut at max_new_tokens)."""

    token_ids: list[int]
    logprobs: list[float]
    finished: bool


class Sampler(Protocol):
    """A generation engine over one policy model. `refresh()` takes the model's current weights (call it
    after an optimizer step); `sample` returns `params.n` completions for each prompt (token ids)."""

    name: str

    def refresh(self) -> None: ...

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]: ...


def left_padded(prompts: list[list[int]], pad_id: int, device) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(input_ids, attention_mask) of `prompts` (token ids), left-padded to the longest, as `generate`
    takes them."""
    import torch  # noqa: F811

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    return ids.to(device), mask.to(device)


def in_batches(prompts: list[list[int]], n: int, batch_size: int, run) -> list[list[Completion]]:
    """`n` completions per prompt: the n·len(prompts) jobs sorted by prompt length (less padding), cut
    into batches of `batch_size`, each given to `run(batch of prompts) -> completions`."""
    jobs = sorted((i for i in range(len(prompts)) for _ in range(n)), key=lambda i: len(prompts[i]))
    out: list[list[Completion]] = [[] for _ in prompts]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        for i, completion in zip(chunk, run([prompts[i] for i in chunk])):
            out[i].append(completion)
    return out


def sample_next(logits: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token, its log-prob) per row of `logits` (B, V), as HF's temperature and top-p warpers draw them."""
    logits = logits.float()
    if params.temperature <= 0:
        logprobs = logits.log_softmax(-1)
        token = logits.argmax(-1)
        return token, logprobs.gather(-1, token[:, None]).squeeze(1)
    logits = logits / params.temperature
    if params.top_p < 1.0:
        logits = top_p_filter(logits, params.top_p)
    logprobs = logits.log_softmax(-1)
    token = draw(logprobs, generator)
    return token, logprobs.gather(-1, token[:, None]).squeeze(1)


def draw(logprobs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from `logprobs` (B, V) by the inverse CDF: a uniform draw looked up in the
    cumulative probabilities. Same distribution as `torch.multinomial`, whose exponential noise over the
    whole vocabulary cost 7 ms a step here (a fifth of a decoding step)."""
    import torch  # noqa: F811
    cdf = logprobs.exp().cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)  # never a p=0 token


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the smallest set whose probability reaches `top_p` set to -inf (HF's rule: sort
    ascending, drop the tail whose cumulative probability is at most 1 - top_p; the top token stays)."""
    ordered, index = logits.sort(-1)
    drop = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
    drop[:, -1] = False
    return logits.masked_fill(drop.scatter(-1, index, drop), float("-inf"))


def cut_at_eos(token_ids: list[int], logprobs: list[float], eos: set[int]) -> Completion:
    """A completion from a row of sampled tokens: up to and including the first EOS."""
    end = next((k + 1 for k, t in enumerate(token_ids) if t in eos), None)
    if end is None:
        return Completion(list(token_ids), list(logprobs), False)
    return Completion(list(token_ids[:end]), list(logprobs[:end]), True)
