"""The GPU paths in one run, with memory and speed per step in one table (`benchmarks/gpu_check.sh`).

    python -m benchmarks.gpu_check [--steps 6] [--model builtin:smollm2-135m-instruct]

Stages, each through the same trainer as `align ...` (in this process, one after another):
4-bit QLoRA SFT, 4-bit reward model (SmolLM2 + LoRA + scalar head), 4-bit DPO, 4-bit PPO (one base for
policy, value and reference; rollouts through `--engine`), bf16 LoRA DPO (no quantization), and rollouts:
HF generate against the vLLM engine with the adapter pushed in. Each training stage runs twice, with 1
and with `--steps` steps; seconds per step = the difference over the extra steps (so loading and the
first step's warm-up are left out); peak memory = `torch.cuda.max_memory_allocated` of the longer run.

Offline: the built-in SmolLM2 where it is prepared on the machine; otherwise a model of SmolLM2-135M's
shape with random weights and a tokenizer made here (right for memory and speed, not for quality).
Without a GPU it prints what it would check and exits 0. A stage that fails prints its error in the table
and the others still run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

STAGES = ("sft-4bit", "reward-4bit", "dpo-4bit", "ppo-4bit", "dpo-bf16", "rollouts")
SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                     rope_theta=100000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)


def model_folder(name: str, workdir: Path) -> str:
    """The built-in model if it can be prepared here, else a random SmolLM2-shaped Llama."""
    try:
        from foundation.models import resolve_model

        return resolve_model(name)
    except Exception as e:                              # noqa: BLE001 - any failure: fall back, say so
        print(f"note: {name} is not available here ({str(e).splitlines()[0][:120]}); "
              "using a random model of SmolLM2-135M's shape")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import _chat_tokenizer

    tok = _chat_tokenizer()
    folder = workdir / "smollm2-shape"
    config = LlamaConfig(**{**SMOLLM2_SHAPE, "vocab_size": len(tok)}, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def write_data(workdir: Path) -> tuple[str, str]:
    """A preference file (records) and its prompts, made here."""
    import random

    rng = random.Random(0)
    words = "pen lamp chair kettle boots coffee library garden train museum bakery bicycle".split()
    rows = []
    for i in range(256):
        thing = rng.choice(words)
        prompt = [{"role": "user", "content": f"Write a short review of the {thing} (#{i})."}]
        good = f"The {thing} is well made, pleasant to use and worth its price. " * rng.randint(1, 3)
        bad = f"{thing}. bad." * rng.randint(1, 3)
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
                     "rejected": [{"role": "assistant", "content": bad}]})
    data = workdir / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = workdir / "prompts.txt"
    prompts.write_text("".join(r["prompt"][0]["content"] + "\n" for r in rows))
    return str(data), str(prompts)


def stage_argv(stage: str, model: str, data: str, prompts: str, engine: str) -> tuple[str, list]:
    common = ["--model", model, "--save_steps", "100000", "--logging_steps", "1"]
    q4 = ["--quantization", "4bit", "--dtype", "bfloat16"]
    batch = ["--max_length", "256", "--per_device_train_batch_size", "8"]
    if stage == "sft-4bit":
        return "sft", [*common, *q4, "--data", data, *batch]
    if stage == "reward-4bit":
        return "reward train", [*common, *q4, "--data", data, "--lora", "true", *batch]
    if stage == "dpo-4bit":
        return "dpo", [*common, *q4, "--data", data, *batch]
    if stage == "dpo-bf16":
        return "dpo", [*common, "--dtype", "bfloat16", "--data", data, *batch]
    if stage == "ppo-4bit":
        return "ppo", [*common, *q4, "--prompts", prompts, "--reward_model", "vader", "--mixed_precision",
                       "bf16", "--per_device_train_batch_size", "32", "--mini_batch_size", "16",
                       "--max_new_tokens", "64", "--engine", engine]
    raise ValueError(stage)


def timed_training(command: str, argv: list, out: Path, steps: int) -> dict:
    import torch

    from align.cli import run_training

    seconds = {}
    for n in (1, steps):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run_training(command, [*argv, "--output_dir", str(out / f"steps-{n}"), "--max_steps", str(n)])
        torch.cuda.synchronize()
        seconds[n] = time.perf_counter() - start
    return {"s/step": (seconds[steps] - seconds[1]) / (steps - 1),
            "peak GiB": torch.cuda.max_memory_allocated() / 2**30,
            "note": f"{steps} steps in {seconds[steps]:.0f} s"}


def timed_rollouts(model: str, engine: str) -> dict:
    import torch

    from align.policy import Policy
    from align.rollout import SamplingParams, make_sampler

    policy = Policy.from_pretrained(model, lora=True, dtype="bfloat16")
    for name, param in policy.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    tok = policy.tokenizer
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Write a review of place {i}."}],
                                       tokenize=True, add_generation_prompt=True, return_dict=False)
               for i in range(64)]
    params = SamplingParams(temperature=1.0, max_new_tokens=128)
    rates = {}
    for name in ("hf", engine):
        sampler = make_sampler(name, policy.model, pad_id=tok.pad_token_id, eos=[], batch_size=64)
        sampler.sample(prompts[:4], SamplingParams(max_new_tokens=8))                   # warm-up
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        n = sum(len(c[0].token_ids) for c in sampler.sample(prompts, params))
        torch.cuda.synchronize()
        rates[name] = n / (time.perf_counter() - start)
    return {"s/step": 64 * 128 / rates[engine], "peak GiB": torch.cuda.max_memory_allocated() / 2**30,
            "note": f"64 x 128 tokens: hf {rates['hf']:.0f} tok/s, {engine} {rates[engine]:.0f} tok/s "
                    f"({rates[engine] / rates['hf']:.1f}x)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    args = parser.parse_args(argv)
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing run. On a GPU machine this checks, with memory and speed per step:")
        for stage in STAGES:
            print(f"  - {stage}")
        return 0
    engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
    if engine == "hf":
        print("note: vLLM is not installed here: the PPO and rollout stages sample with HF generate")
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    model = model_folder(args.model, workdir)
    data, prompts = write_data(workdir)
    rows = []
    for stage in args.stages.split(","):
        try:
            if stage == "rollouts":
                row = timed_rollouts(model, engine)
            else:
                command, stage_args = stage_argv(stage, model, data, prompts, engine)
                row = timed_training(command, stage_args, workdir / stage, args.steps)
        except Exception as e:                          # noqa: BLE001 - report it, run the next stage
            traceback.print_exc()
            row = {"s/step": float("nan"), "peak GiB": float("nan"), "note": f"FAILED: {str(e)[:100]}"}
        rows.append((stage, row))
        print(json.dumps({stage: row}), flush=True)
    print(f"\n{torch.cuda.get_device_name(0)}, torch {torch.__version__}, engine {engine}\n")
    print("| stage | s/step | peak GPU memory (GiB) | note |\n|---|---|---|---|")
    for stage, row in rows:
        print(f"| {stage} | {row['s/step']:.3f} | {row['peak GiB']:.2f} | {row['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
