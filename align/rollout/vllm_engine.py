"""The `vllm` engine: vLLM colocated in the training process on a GPU, as TRL's colocate mode runs it.

vLLM holds its own bf16 copy of the policy, built from the base model's folder; `refresh()` pushes the
current weights (LoRA folded in, a 4-bit base dequantized) into it with its `load_weights`, so it samples
what the trainer would. Between samplings it sleeps (weights to CPU RAM, KV cache freed) where
`ALIGN_VLLM_SLEEP=1` (the default), leaving the GPU to training. `ALIGN_VLLM_MEMORY` (default 0.3) is the
share of GPU memory vLLM may take for weights and KV cache.
Needs a GPU and `pip install vllm` (see `recipes/ppo-vllm-gpu.yaml`); not exercised on this project's
CPU machines (vLLM's CPU build pins another transformers), hence the `gpu` marker on its test.
"""

from __future__ import annotations

import os

from align.rollout.base import Completion, SamplingParams
from foundation.errors import ConfigError


class VLLMSampler:
    name = "vllm"

    def __init__(self, model, eos: list[int]):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ConfigError("generation engine 'vllm' needs vLLM: pip install vllm (a GPU machine), "
                              "or use --engine auto / hf.") from None
        if next(model.parameters()).device.type != "cuda":
            raise ConfigError("generation engine 'vllm' runs on a GPU; this model is on the CPU. "
                              "Use --engine auto (fused on CPU).")
        self.model, self.eos = model, list(eos)
        self.sleep = os.environ.get("ALIGN_VLLM_SLEEP", "1") != "0"
        self._llm = None
        self._stale = True

    def _engine(self):
        if self._llm is None:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")   # in-process: weights by reference
            from vllm import LLM

            from align.rollout.weights import causal_lm

            lm = causal_lm(self.model)
            kwargs = dict(model=lm.config._name_or_path, dtype="bfloat16", enable_sleep_mode=self.sleep,
                          gpu_memory_utilization=float(os.environ.get("ALIGN_VLLM_MEMORY", "0.3")),
                          max_num_seqs=256, enable_prefix_caching=True, logprobs_mode="processed_logprobs",
                          quantization=None, seed=0)
            try:
                self._llm = LLM(**kwargs)
            except TypeError:                   # an older vLLM without logprobs_mode: raw log-probs
                kwargs.pop("logprobs_mode")
                self._llm = LLM(**kwargs)
        return self._llm

    def refresh(self) -> None:
        self._stale = True

    def _push_weights(self, llm) -> None:
        import torch

        from align.rollout.weights import merged_state

        weights = [(name, t.to(device="cuda", dtype=torch.bfloat16)) for name, t in merged_state(self.model)]

        def load(worker):
            worker.model_runner.model.load_weights(weights=weights)

        llm.collective_rpc(load)
        llm.reset_prefix_cache()
        self._stale = False

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMParams
        from vllm.inputs import TokensPrompt

        llm = self._engine()
        if self.sleep:
            llm.wake_up()
        if self._stale:
            self._push_weights(llm)
        sampling = VLLMParams(n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=-1,
                              max_tokens=params.max_new_tokens, logprobs=0, stop_token_ids=self.eos,
                              seed=params.seed)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sampling, use_tqdm=False)
        if self.sleep:
            llm.sleep(level=1)
        return [[Completion(list(o.token_ids), [lp[t].logprob for t, lp in zip(o.token_ids, o.logprobs)],
                            o.finish_reason == "stop") for o in out.outputs] for out in outputs]

