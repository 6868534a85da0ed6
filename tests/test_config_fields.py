"""Each command's config holds exactly what its trainer reads (configs composed per trainer).

Every trainer runs one real step on a tiny model with a config that records which of its fields the
run reads (validation in `__post_init__` and `dataclasses.asdict` snapshots do not count): a field
that no trainer code reads would be a flag that changes nothing, and fails here unless it is listed in
`METADATA` with the reason it is there.
"""

import dataclasses
import json
import sys

import pytest

from align.cli import main

# Fields a run does not read on purpose, and why.
METADATA = {
    "activation_memory_budget": "read only with torch_compile (test_ppo's compiled-layers test compiles)",
    "gradient_checkpointing": "read by the loader only when true (tiny models here run without it)",
    "lora_target_modules": "read by the loader only when set (default: found per architecture)",
    "resume": "read only when true (the resume tests cover it)",
}


def tracking(config):
    """A copy of `config` whose class records every field read after construction."""
    cls = type(config)
    names = {f.name for f in dataclasses.fields(cls)}
    reads: set[str] = set()

    class Tracked(cls):
        def __getattribute__(self, name):
            if name in names and sys._getframe(1).f_globals.get("__name__") != "dataclasses":
                reads.add(name)
            return object.__getattribute__(self, name)

    Tracked.__name__ = Tracked.__qualname__ = cls.__name__
    tracked = Tracked(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})
    reads.clear()                               # __post_init__'s checks are not the trainer's reads
    return tracked, reads


def unread(config, reads) -> list[str]:
    return sorted({f.name for f in dataclasses.fields(config)} - reads - set(METADATA))


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    path = tmp_path_factory.mktemp("fields") / "prefs.jsonl"
    rows = [{"prompt": f"Review product {i}.", "chosen": "Great, I love it.", "rejected": "Bad."}
            for i in range(8)]
    rows.append({"prompt": "Review the lamp.", "chosen": "Fine.", "rejected": "Okay.", "tie": True})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def _run(make, run, tmp_path):
    config, reads = tracking(make(str(tmp_path / "out")))
    run(config)
    return unread(config, reads)


def test_sft_reads_every_field(tiny_llama, prefs, tmp_path):
    from align.sft.config import SFTConfig
    from align.sft.trainer import train_sft

    assert _run(lambda out: SFTConfig(model=tiny_llama, data=prefs, output_dir=out, max_steps=1, lora_r=4),
                train_sft, tmp_path) == []


def test_dpo_reads_every_field(tiny_llama, prefs, tmp_path):
    from align.dpo.config import DPOConfig
    from align.dpo.trainer import train_dpo

    assert _run(lambda out: DPOConfig(model=tiny_llama, data=prefs, output_dir=out, max_steps=1, lora_r=4,
                                      gradient_checkpointing=False, max_length=64), train_dpo, tmp_path) == []


def test_kto_reads_every_field(tiny_llama, tmp_path):
    from align.kto.config import KTOConfig
    from align.kto.trainer import train_kto

    rated = tmp_path / "rated.jsonl"
    rows = [{"prompt": f"Review {i}.", "completion": "Great!" if i % 2 else "Bad.", "label": bool(i % 2)}
            for i in range(8)]
    rated.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _run(lambda out: KTOConfig(model=tiny_llama, data=str(rated), output_dir=out, max_steps=1,
                                      lora_r=4, max_length=64, per_device_train_batch_size=4),
                train_kto, tmp_path) == []


def test_reward_reads_every_field(tiny_bert, prefs, tmp_path):
    from reward.config import RewardConfig
    from reward.trainer import train_reward

    assert _run(lambda out: RewardConfig(model=tiny_bert, data=prefs, output_dir=out, max_steps=1,
                                         max_length=64, eval_data=prefs, lora=True, lora_r=4),
                train_reward, tmp_path) == []


def test_ppo_reads_every_field(tiny_llama, tmp_path):
    from align.ppo.config import PPOConfig
    from align.ppo.trainer import train_ppo

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Say something about {i}\n" for i in range(4)))
    assert _run(lambda out: PPOConfig(model=tiny_llama, prompts=str(prompts), output_dir=out, max_steps=1,
                                      per_device_train_batch_size=4, mini_batch_size=2, micro_batch_size=2,
                                      max_new_tokens=4, lora_r=4, kl_stop=100.0), train_ppo, tmp_path) == []


def test_grpo_reads_every_field(tiny_llama, tmp_path):
    from align.grpo.config import GRPOConfig
    from align.grpo.trainer import train_grpo

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Say something about {i}\n" for i in range(4)))
    assert _run(lambda out: GRPOConfig(model=tiny_llama, prompts=str(prompts), output_dir=out, max_steps=1,
                                       per_device_train_batch_size=4, num_generations=2,
                                       max_completion_length=4, lora_r=4), train_grpo, tmp_path) == []


@pytest.mark.parametrize("command, key", [
    ("ppo", "num_train_epochs"), ("ppo", "gradient_accumulation_steps"), ("ppo", "max_length"),
    ("grpo", "max_length"),
])
def test_a_field_the_trainer_ignores_is_an_unknown_key(command, key, capsys):
    assert main([command, f"--{key}", "2", "--prompts", "p.txt"]) == 2
    assert f"unknown key `{key}`" in capsys.readouterr().err
