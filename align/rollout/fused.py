"""The `fused` engine: our own decoder for Llama-family causal LMs (Llama, Mistral, Qwen2, SmolLM),
for sampling on CPUs where HF `generate` is far from what the hardware reaches.

What makes it faster than `generate` on the same model (measured in `benchmarks/rollout_speed.py`):
- a *snapshot* of the weights with the LoRA adapter folded in (and a 4/8-bit base dequantized): one
  matmul per projection; in bf16 where the CPU multiplies it natively (AMX, AVX512-BF16: half the bytes
  of fp32 to read per step; prepacked once in oneDNN's blocked layout), in fp32 elsewhere (emulated bf16
  is 3.8x slower than fp32 on an AVX2 CPU; MKL's prepacked fp32 GEMM gained under 10%, so plain F.linear);
- q/k/v and gate/up projections fused into one matmul each (fewer, larger GEMMs per layer);
- a preallocated KV cache written in place (no concatenation per step);
- finished rows dropped from the batch as they end.
The snapshot is taken by `refresh()`; the model itself is never changed. RoPE comes from the model's
own rotary module, so its scaling variants are the model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from align.rollout.base import Completion, SamplingParams, in_batches, left_padded, sample_next
from align.rollout.weights import base_weight, causal_lm, effective_weight
from foundation.precision import sampling_dtype

SUPPORTED = ("llama", "mistral", "qwen2")
ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


def supports(model) -> str | None:
    """None when the fused engine can run `model`, else the reason it cannot (one line)."""
    lm = causal_lm(model)
    config = lm.config
    if config.model_type not in SUPPORTED:
        return f"its architecture ({config.model_type}) is not one of {', '.join(SUPPORTED)}"
    if getattr(config, "hidden_act", "silu") not in ACTIVATIONS:
        return f"its activation ({config.hidden_act}) is not supported"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True) \
            and config.model_type == "mistral":
        return "it uses sliding-window attention"
    if not hasattr(lm.model, "rotary_emb"):
        return "it has no rotary embedding module"
    return None


class _Linear:
    """y = x·Wᵀ + b with W in the snapshot dtype; on CPU the weight is prepacked once in oneDNN's blocked
    layout (the reorder `F.linear` otherwise pays on every call: 30-35% of decoding time measured)."""

    def __init__(self, linears, dtype: torch.dtype, batch_hint: int):
        weight, biases = _stacked(linears, dtype)
        self.bias = None
        if any(b is not None for b in biases):
            self.bias = torch.cat([b if b is not None else torch.zeros(m.out_features)
                                   for m, b in zip(linears, biases)]).to(dtype)
        self.packed = _prepack(weight, batch_hint)
        self.weight = weight if self.packed is None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [None], "")
        return F.linear(x, self.weight, self.bias)


def _stacked(linears, dtype: torch.dtype) -> tuple[torch.Tensor, list]:
    """The effective weights of `linears` stacked by rows, in `dtype`, and their biases (fp32 or None).
    LoRA layers are folded in one fp32 buffer, row block by row block, and cast once; a plain linear
    layer's weight is only cast or dequantized (the model's own tensor when it is in `dtype` already: the
    snapshot never writes to it). Taking the snapshot of SmolLM2-135M, profiled: 194 ms against 448 ms
    with an fp32 copy and a delta matrix per layer, summed, concatenated and cast."""
    from peft.tuners.lora import LoraLayer

    if len(linears) == 1 and not isinstance(linears[0], LoraLayer):     # a 4/8-bit one: dequantized, cast
        linear = linears[0]
        bias = linear.bias.detach().float() if linear.bias is not None else None
        return base_weight(linear).to(dtype), [bias]
    sizes = [m.out_features for m in linears]
    buffer = torch.empty(sum(sizes), linears[0].in_features, dtype=torch.float32,
                         device=linears[0].weight.device)
    biases = [effective_weight(m, out=rows)[1] for m, rows in zip(linears, buffer.split(sizes))]
    return buffer.to(dtype), biases


def _prepack(weight: torch.Tensor, batch_hint: int) -> torch.Tensor | None:
    if weight.device.type != "cpu" or weight.dtype != torch.bfloat16 \
            or not torch.backends.mkldnn.is_available():
        return None
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
        probe = torch.ones(1, weight.shape[1], dtype=weight.dtype)
        got = torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [None], "")
        if not torch.allclose(got.float(), F.linear(probe, weight).float(), rtol=1e-2, atol=1e-2):
            return None
        return packed
    except (RuntimeError, AttributeError):      # a torch without these oneDNN ops: plain F.linear
        return None


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: _Linear
    o: _Linear
    norm2: torch.Tensor
    gate_up: _Linear
    down: _Linear


class FusedDecoder:
    """A snapshot of a Llama-family model (bf16 or fp32) that prefills and decodes batches with a static
    cache."""

    def __init__(self, model, dtype: torch.dtype = torch.bfloat16, batch_hint: int = 16):
        reason = supports(model)
        if reason:
            raise ValueError(f"the fused engine cannot run this model: {reason}")
        lm = causal_lm(model)
        c = lm.config
        self.dtype = dtype
        self.device = lm.model.embed_tokens.weight.device
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps = c.rms_norm_eps
        self.act = ACTIVATIONS[getattr(c, "hidden_act", "silu")]
        self.rotary = lm.model.rotary_emb
        with torch.no_grad():
            self.embed = lm.model.embed_tokens.weight.detach().to(dtype)
            self.layers = [self._layer(block, dtype, batch_hint) for block in lm.model.layers]
            self.norm = lm.model.norm.weight.detach().to(dtype)
            self.lm_head = _Linear([lm.lm_head], dtype, batch_hint)

    @staticmethod
    def _layer(block, dtype, batch_hint) -> _Layer:
        a, m = block.self_attn, block.mlp
        return _Layer(block.input_layernorm.weight.detach().to(dtype),
                      _Linear([a.q_proj, a.k_proj, a.v_proj], dtype, batch_hint),
                      _Linear([a.o_proj], dtype, batch_hint),
                      block.post_attention_layernorm.weight.detach().to(dtype),
                      _Linear([m.gate_proj, m.up_proj], dtype, batch_hint),
                      _Linear([m.down_proj], dtype, batch_hint))

    # -- one forward over new tokens -------------------------------------------------------------

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, cache: "_Cache", start: int,
                visible: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, H) of the last norm for `ids` (B, T) at `positions` (B, T), written into
        the cache at columns start..start+T; `visible` (B, 1, T, start+T) says which cache columns each
        query attends to."""
        x = F.embedding(ids, self.embed)
        cos, sin = self.rotary(x, positions)
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        B, T, _ = x.shape
        end = start + T
        # one decoding step: the attention of one query per row, by hand (below); the mask as a bias once
        bias = torch.zeros(visible.shape, device=x.device).masked_fill_(~visible, float("-inf")) \
            if T == 1 else None
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), layer.norm1, self.eps)
            qkv = layer.qkv(h)
            q, k, v = qkv.split((q_size, kv_size, kv_size), dim=-1)
            q = q.view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            cache.k[i][:, :, start:end] = k
            cache.v[i][:, :, start:end] = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]
            if bias is None:
                attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible,
                                                      enable_gqa=self.heads != self.kv_heads)
            else:
                attn = _step_attention(q, keys, values, bias)
            x = x + layer.o(attn.transpose(1, 2).reshape(B, T, q_size))
            h = F.rms_norm(x, (x.shape[-1],), layer.norm2, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(self.act(gate) * up)
        return F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], params: SamplingParams, eos: list[int],
               generator: torch.Generator | None = None) -> list[Completion]:
        """One completion per prompt (token ids), sampled together in one batch."""
        ids, mask = left_padded(prompts, 0, self.device)
        B, P = ids.shape
        pad = mask == 0
        positions = (~pad).long().cumsum(1) - 1
        positions.masked_fill_(pad, 1)
        cache = _Cache(self, B, P + params.max_new_tokens)
        causal = torch.ones(P, P, dtype=torch.bool, device=self.device).tril()
        visible = (causal[None] & ~pad[:, None, :])[:, None]                 # (B, 1, P, P)
        visible |= torch.eye(P, dtype=torch.bool, device=self.device)       # padded queries see themselves
        hidden = self.forward(ids, positions, cache, 0, visible)[:, -1]
        key_ok = torch.cat([~pad, torch.zeros(B, params.max_new_tokens, dtype=torch.bool,
                                               device=self.device)], 1)    # (B, S): columns a row may read
        rows = torch.arange(B, device=self.device)                          # original row of each live row
        position = positions[:, -1]
        eos_t = torch.tensor(eos, device=self.device)
        tokens = [[] for _ in range(B)]
        logprobs = [[] for _ in range(B)]
        finished = [False] * B
        for step in range(params.max_new_tokens):
            token, logprob = sample_next(self.logits(hidden), params, generator)
            for r, t, lp in zip(rows.tolist(), token.tolist(), logprob.tolist()):
                tokens[r].append(t)
                logprobs[r].append(lp)
            done = torch.isin(token, eos_t)
            for r in rows[done].tolist():
                finished[r] = True
            if step == params.max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                rows, token, position, key_ok = rows[keep], token[keep], position[keep], key_ok[keep]
                cache.select(keep)
            column = P + step
            key_ok[:, column] = True
            position = position + 1
            visible = key_ok[:, None, None, :column + 1]
            hidden = self.forward(token[:, None], position[:, None], cache, column, visible)[:, -1]
        return [Completion(t, lp, f) for t, lp, f in zip(tokens, logprobs, finished)]


def _step_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Attention of one query per row: q (B, heads, 1, D) over k, v (B, kv_heads, S, D), `bias` (B, 1, 1, S)
    0 or -inf. Each kv head's query heads are grouped into one matmul (no repeated keys), in fp32 like
    SDPA's accumulators. On CPU it is 4-6x faster than `scaled_dot_product_attention` for this shape (its
    flash kernel is built for many queries): 75 against 340 µs a layer at 90 keys, a fifth of the
    decoding time of SmolLM2-135M at batch 8."""
    B, heads, _, D = q.shape
    kv_heads, S = k.shape[1], k.shape[2]
    grouped = q.reshape(B, kv_heads, heads // kv_heads, D).float()
    scores = torch.matmul(grouped, k.float().transpose(-1, -2)).mul_(D ** -0.5).add_(bias.view(B, 1, 1, S))
    out = torch.matmul(torch.softmax(scores, dim=-1), v.float())
    return out.reshape(B, heads, 1, D).to(q.dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class _Cache:
    """Keys and values of every layer, (B, kv_heads, S, head_dim), preallocated for S columns."""

    def __init__(self, decoder: FusedDecoder, batch: int, columns: int):
        shape = (batch, decoder.kv_heads, columns, decoder.head_dim)
        self.k = [torch.empty(shape, dtype=decoder.dtype, device=decoder.device) for _ in decoder.layers]
        self.v = [torch.empty(shape, dtype=decoder.dtype, device=decoder.device) for _ in decoder.layers]

    def select(self, rows: torch.Tensor) -> None:
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]


class FusedSampler:
    """The `Sampler` over a `FusedDecoder` snapshot, taken at the first `sample` after `refresh()`."""

    name = "fused"

    def __init__(self, model, eos: list[int], batch_size: int = 16, dtype: torch.dtype | None = None):
        """`dtype`: the snapshot's; by default bf16 where the model's device multiplies it natively,
        else fp32 (`foundation.precision`)."""
        if dtype is None:
            dtype = sampling_dtype(causal_lm(model).model.embed_tokens.weight.device.type)
        self.model, self.eos, self.batch_size, self.dtype = model, list(eos), batch_size, dtype
        self._decoder: FusedDecoder | None = None

    def refresh(self) -> None:
        self._decoder = None

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if self._decoder is None:
            self._decoder = FusedDecoder(self.model, self.dtype, self.batch_size)
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        return in_batches(prompts, params.n, self.batch_size,
                          lambda batch: self._decoder.sample(batch, params, self.eos, generator))
