"""PPO's model pieces: the policy with its value head, and the shared-prefix forward.

`PolicyWithValue` holds everything on one base: the policy is a LoRA adapter, the value function a
linear head on the policy's last hidden state (or on a separate value model), the reference the same
base with the adapter disabled; `token_logprobs` reads log π(token) off logits at the sampling temperature.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

__all__ = ["PolicyWithValue", "common_prefix", "compile_layers", "head_logprobs", "logprobs_and_entropy",
           "token_logprobs"]


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
        before each of them, or None). Logits are computed for those T positions only: the prompt's would
        cost a fifth of the forward and a copy of (B, P, V) floats for nothing. The output layer is
        applied here to a contiguous copy of those states, not through 🤗's `logits_to_keep`: its slice of
        the hidden states is a strided (B, T, H) view, and a linear layer over one is a batched matmul
        that first copies the weight B times ((B, H, V): 1.4 of a 3.4 s forward + backward on this CPU).

        Rows are left-padded prompts followed by responses. When every row's prompt starts with the same
        S tokens (a chat template's system prompt, an instruction), those go through the model once: the
        rows go without them, beside one more row that holds them, and each layer's attention puts that
        row's first S keys and values before every row's own (gradients flow back through them). The same
        function, on B + 1 rows of max(L - S, S) tokens instead of B of L; the layers' code is unchanged, so
        compiled layers compile it once (SmolLM2's 24-token system prompt, 8 rows of 87 tokens: a forward
        + backward 7% faster, compiled, bf16, this CPU)."""
        states = self._states(input_ids, attention_mask, start)
        logits = _body_and_head(self.model)[1](states)
        return logits, self._values(states, input_ids, attention_mask, start) if with_values else None

    def logprobs(self, input_ids, attention_mask, start: int, temperature: float, *,
                 with_values: bool = True):
        """(log π (B, T) of the tokens input_ids[:, start:] at the sampling `temperature`, fp32; the
        sampling distribution's entropy (B, T), without gradient; values (B, T) or None), the same as
        `forward`'s logits through `logprobs_and_entropy`, but with the output layer applied a chunk of
        positions at a time (`head_logprobs`): the update never holds the (B, T, V) fp32 logits, their
        log-softmax or its gradient (3 x 63 MB at 8 x 40 tokens of SmolLM2's 49,152-token vocabulary),
        only up to 2^24 logits in the autocast dtype."""
        states = self._states(input_ids, attention_mask, start)
        tokens = input_ids[:, start:]
        logprobs, entropy = head_logprobs(states, _body_and_head(self.model)[1], tokens, temperature)
        values = self._values(states, input_ids, attention_mask, start) if with_values else None
        return logprobs, entropy, values

    def _states(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """The last hidden states (B, T, H) before each of the tokens input_ids[:, start:], contiguous."""
        T = input_ids.shape[1] - start
        body = _body_and_head(self.model)[0]
        B, L = input_ids.shape
        shareable = self.share_prefix and _attention_modules(body) is not None
        S = common_prefix(input_ids, attention_mask, start) if shareable else 0
        W = max(L - S, S)                           # the rows' width: each without its prefix, or the prefix
        if S and (B + 1) * W >= B * L:              # no work saved
            S = 0
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if not S:
            hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).last_hidden_state
            return hidden[:, -T - 1:-1].contiguous()
        # Each row without its prefix (left-padded to W), and one more row that holds the prefix (then
        # padding): its keys and values at each layer are every row's first S (`_prefix_attention`).
        pads = (attention_mask.long().cumsum(-1) == 0).sum(-1, keepdim=True)            # (B, 1) left pads
        cols = torch.arange(L - S, device=input_ids.device)[None]
        cols = cols + S * (cols >= pads)
        extra = (W - (L - S), 0)
        first = torch.arange(W, device=input_ids.device)[None]
        prefix = F.pad(input_ids[:1, pads[0, 0]:pads[0, 0] + S], (0, W - S))
        ids = torch.cat([F.pad(input_ids.gather(1, cols), extra), prefix])
        positions = torch.cat([F.pad(position_ids.gather(1, cols), extra), first])
        own = torch.cat([F.pad(attention_mask.gather(1, cols), extra), (first < S).long()])
        with _attending_to_prefix(body) as implementation:
            mask = _after_prefix_mask(own, S, implementation, body.get_input_embeddings().weight.dtype)
            hidden = body(input_ids=ids, position_ids=positions, attention_mask=mask,
                          use_cache=False).last_hidden_state
        return hidden[:B, -T - 1:-1].contiguous()

    def _values(self, states, input_ids, attention_mask, start: int) -> torch.Tensor:
        return self.values_of(states) if self.value_backbone is None \
            else self.backbone_values(input_ids, attention_mask, start)

    def backbone_values(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """Values (B, T) from the separate value model (`value_model: separate`)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = _body_and_head(self.value_backbone)[0](
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=False).last_hidden_state
        return self.values_of(hidden[:, start - 1:-1])

    def values_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """The value head on last-layer hidden states (..., H) -> (...)."""
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)

    def reference(self):
        """Context in which the model is the reference (the base, adapter disabled)."""
        return self.model.disable_adapter()


def _body_and_head(model):
    """The decoder stack (→ last hidden states) and the output layer of a (peft-wrapped) causal LM."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    return causal.get_decoder(), causal.get_output_embeddings()


# -- the shared prefix: every row's attention reads the prefix row's first keys and values before its own --


def _attention_modules(body) -> list | None:
    """The attention module of each decoder layer, when they dispatch through 🤗's attention interface
    (eager or SDPA) that `_attending_to_prefix` can wrap; else None (no shared prefix: the plain forward)."""
    layers = getattr(body, "layers", None)
    if layers is None or getattr(body.config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return None
    modules = [getattr(layer, "self_attn", None) for layer in layers]
    return modules if all(m is not None and hasattr(m, "layer_idx") for m in modules) else None


@contextmanager
def _attending_to_prefix(body):
    """While inside, `body`'s attention is `_prefix_attention` around its own (eager or SDPA); yields the
    name of its own. Nothing per layer is held or looked up (no cache, no layer index), so compiled layers
    keep sharing one graph."""
    import functools
    import sys

    from transformers import AttentionInterface

    base = body.config._attn_implementation
    module = type(_attention_modules(body)[0]).__module__
    name = f"align_shared_prefix:{base}:{module}"     # eager: the model's own (some soft-cap their scores)
    if name not in AttentionInterface().valid_keys():   # once: compiled layers guard on the function
        attention = sys.modules[module].eager_attention_forward if base == "eager" \
            else AttentionInterface()[base]
        AttentionInterface.register(name, functools.partial(_prefix_attention, attention))
    body.config._attn_implementation = name
    try:
        yield base
    finally:
        body.config._attn_implementation = base


def _prefix_attention(attention, module, query, key, value, attention_mask, **kwargs):
    """`attention` with the last row's first S keys and values (the prefix's) before every row's own,
    S being what the mask (`_after_prefix_mask`) has more columns than the rows have keys."""
    S = attention_mask.shape[-1] - key.shape[2]
    key = torch.cat([key[-1:, :, :S].expand(len(key), -1, -1, -1), key], 2)
    value = torch.cat([value[-1:, :, :S].expand(len(value), -1, -1, -1), value], 2)
    return attention(module, query, key, value, attention_mask, **kwargs)


def _after_prefix_mask(own: torch.Tensor, S: int, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """The 4-D mask (R, 1, L, S + L) of rows whose tokens are `own` (R, L: 1 = a token, 0 = padding):
    every row but the last (the prefix's) sees the S prefix columns, and each row its own earlier tokens
    (so no query sees nothing: the last row's first S are tokens). Boolean for SDPA, additive (in `dtype`)
    for eager attention."""
    R, L = own.shape
    causal = torch.ones(L, L, dtype=torch.bool, device=own.device).tril()
    mine = causal[None] & own.bool()[:, None, :]
    prefix = own.new_ones(R, L, S, dtype=torch.bool)
    prefix[-1] = False
    visible = torch.cat([prefix, mine], -1)[:, None]
    if implementation == "sdpa":
        return visible
    additive = torch.zeros(visible.shape, dtype=dtype, device=own.device)
    return additive.masked_fill_(~visible, torch.finfo(dtype).min)


def compile_layers(model) -> None:
    """Compile each decoder layer of a (peft-wrapped) causal LM in place, with dynamic shapes. The layers
    share one code object and their parameters are graph inputs, so the layers share compiled graphs
    rather than one each; elementwise work around the matmuls (norms, rotary, LoRA scaling, residual
    adds) is fused. The layers, not the whole model: its Python-side masks and caches sit outside them."""
    body = _body_and_head(model)[0]
    layers = getattr(body, "layers", None) or getattr(body, "h", None)
    if layers is None:
        body.compile(dynamic=True)
        return
    for layer in layers:
        layer.compile(dynamic=True)


def common_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int, minimum: int = 8) -> int:
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


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π(token) (B, T) from the logits (B, T, V) that predict `tokens` (B, T), at the sampling
    temperature."""
    return _log_softmax(logits, temperature).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor,
                         temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` and the entropy (B, T) of the sampling distribution at each position (no
    gradient), from one log-softmax over the vocabulary (the update's largest tensor: B × T × V floats)."""
    logp = _log_softmax(logits, temperature)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy


def head_logprobs(states: torch.Tensor, head, tokens: torch.Tensor,
                  temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`logprobs_and_entropy(head(states), tokens, temperature)` for states (B, T, H), without the
    (B, T, V) fp32 logits: a bias-free linear output layer is applied to a chunk of positions at a time
    (`_CHUNK_FLOATS`), forward and again in the backward (as Liger-Kernel's fused linear cross-entropy
    does); any other head falls back to the logits."""
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return logprobs_and_entropy(head(states), tokens, temperature)
    device = states.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.weight.dtype
    B, T, H = states.shape
    with torch.autocast(device, enabled=False):
        logprobs, entropy = _HeadLogprobs.apply(states.reshape(B * T, H), head.weight, tokens.reshape(-1),
                                                 temperature, dtype)
    return logprobs.view(B, T), entropy.view(B, T)


# Positions per chunk of `head_logprobs`: one matmul of the output layer gives a (chunk, V) tensor of 2^24
# logits (32 MB in bf16 at V = 49,152: 341 positions), which the passes over the vocabulary (max, exp,
# sums) then go through a few rows at a time (about 1 MB of fp32), in the core's L2 cache rather than from
# memory. A forward + backward of 8 x 40 positions of SmolLM2 in bf16 (this CPU): 77 ms, against 198 ms
# with chunks of 2^23 and each pass over a whole chunk.
_CHUNK_FLOATS = 1 << 24
_ROW_FLOATS = 1 << 18


class _HeadLogprobs(torch.autograd.Function):
    """log π(token) and the entropy at N positions from their states (N, H) and the output layer's weight
    (V, H), a chunk of positions at a time; the backward recomputes each chunk's logits, so only the
    states and one log-normaliser per position are kept between the two."""

    @staticmethod
    def forward(ctx, states, weight, tokens, temperature: float, dtype: torch.dtype):
        chunk, rows = _chunks(weight.shape[0])
        w = weight.to(dtype)
        acc = _accumulation(dtype)
        logprobs, entropy, lse = (torch.empty(len(states), dtype=acc, device=states.device)
                                  for _ in range(3))
        for i in range(0, len(states), chunk):
            logits = states[i:i + chunk].to(dtype) @ w.T
            for j in range(0, len(logits), rows):
                z = logits[j:j + rows].to(acc).div_(temperature)
                k = slice(i + j, i + j + len(z))
                top = z.amax(-1, keepdim=True)
                e = torch.sub(z, top).exp_()
                total = e.sum(-1)
                lse[k] = top.squeeze(-1) + total.log()
                logprobs[k] = z.gather(-1, tokens[k, None]).squeeze(-1) - lse[k]
                entropy[k] = lse[k] - e.mul_(z).sum(-1) / total
        ctx.save_for_backward(states, weight, tokens, lse)
        ctx.temperature, ctx.dtype = temperature, dtype
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, _grad_entropy):
        states, weight, tokens, lse = ctx.saved_tensors
        dtype, temperature = ctx.dtype, ctx.temperature
        chunk, rows = _chunks(weight.shape[0])
        w = weight.to(dtype)
        acc = _accumulation(dtype)
        grad_states = torch.empty_like(states) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) \
            if ctx.needs_input_grad[1] else None
        for i in range(0, len(states), chunk):
            s = states[i:i + chunk].to(dtype)
            logits = s @ w.T
            for j in range(0, len(logits), rows):
                z = logits[j:j + rows].to(acc).div_(temperature)
                k = slice(i + j, i + j + len(z))
                g = grad_logprobs[k].to(acc)
                # d log p(t) / dz = onehot(t) − softmax(z), through z = logits / temperature
                dz = z.sub_(lse[k, None]).exp_().mul_(-g[:, None])
                dz.scatter_add_(-1, tokens[k, None], g[:, None])
                logits[j:j + rows] = dz.div_(temperature)              # the logits' gradient, in place
            if grad_states is not None:
                grad_states[i:i + chunk] = logits @ w
            if grad_weight is not None:
                grad_weight += (logits.T @ s).to(acc)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_states, grad_weight, None, None, None


def _accumulation(dtype: torch.dtype) -> torch.dtype:
    """What the passes over the vocabulary compute in: fp32 for bf16/fp16 matmuls, the matmul's own
    precision when it is higher (a float64 head stays float64, so it matches the logits path exactly)."""
    return torch.promote_types(dtype, torch.float32)


def _chunks(vocabulary: int) -> tuple[int, int]:
    """(positions per matmul chunk, positions per pass over the vocabulary) of `_HeadLogprobs`."""
    return max(1, _CHUNK_FLOATS // vocabulary), max(1, _ROW_FLOATS // vocabulary)


def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.to(_accumulation(logits.dtype))
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1)
