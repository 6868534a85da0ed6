"""The few collectives our own trainers (PPO) need under `accelerate launch` / torchrun, and nothing
when there is one process. The 🤗 Trainer-based stages (SFT, DPO, reward) get theirs from accelerate.

PPO trains only an adapter and a value head, so it does not wrap the model in DDP: each process
computes gradients on its share of a minibatch, and one `all_reduce` of a flat buffer sums them
(plus the loss and statistics riding along). This works the same for a 4-bit base, which DDP's
parameter broadcast does not handle.
"""

from __future__ import annotations

import torch

__all__ = ["Processes"]


class Processes:
    """Rank, world size and device of this process (from accelerate's `PartialState`)."""

    def __init__(self):
        from accelerate import PartialState

        # cpu=True without a GPU: two CPU processes under `accelerate launch` form a gloo group (as the
        # 🤗 Trainer's `use_cpu` does); a plain run stays one process either way.
        state = PartialState(cpu=not torch.cuda.is_available())
        self.rank, self.world, self.device = state.process_index, state.num_processes, state.device
        self.is_main = state.is_main_process

    def gather(self, items: list) -> list:
        """Every process's `items` (picklable; tensors travel on the CPU), concatenated in rank order."""
        if self.world == 1:
            return items
        items = [_to_cpu(item) for item in items]
        everyone: list = [None] * self.world
        torch.distributed.all_gather_object(everyone, items)
        return [item for part in everyone for item in part]

    def sum_gradients(self, params: list[torch.nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
        """Sum the gradients of `params` over processes, in place, in one collective; `extra` (a
        vector: loss, statistics) is summed with them and returned."""
        if self.world == 1:
            return extra
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in params] + [extra.float().to(params[0].device)])
        torch.distributed.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
            offset += n
        return flat[offset:]

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Copy rank 0's values of `tensors` to every process (same initial adapter and head)."""
        if self.world > 1:
            for t in tensors:
                torch.distributed.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _to_cpu(item):
    if isinstance(item, torch.Tensor):
        return item.cpu()
    if isinstance(item, dict):
        return {k: _to_cpu(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return type(item)(_to_cpu(v) for v in item)
    return item
