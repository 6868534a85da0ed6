"""The one recipe parser: YAML + flags into dataclasses, with errors that name the key and the fix."""

import os

import pytest

from align.sft.config import SFTConfig
from foundation.errors import ConfigError
from foundation.recipe import load_config, parse_flags


def test_yaml_then_flags_override(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: d.jsonl\nlearning_rate: 1.0e-5\nlora_r: 8\n"
                      "lora_target_modules: [q_proj, v_proj]\n")
    cfg = load_config(SFTConfig, recipe,
                      parse_flags(["--lora_r", "4", "--packing", "--max-steps=3"], SFTConfig))
    assert cfg.learning_rate == 1e-5 and cfg.lora_r == 4 and cfg.packing is True and cfg.max_steps == 3
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]
    cfg = load_config(SFTConfig, None, parse_flags(["--data", "x", "--lora_target_modules", "a,b",
                                                    "--quantization", "4bit", "--packing", "false"],
                                                   SFTConfig))
    assert cfg.lora_target_modules == ["a", "b"] and cfg.quantization == "4bit" and cfg.packing is False


def test_unknown_yaml_key_names_key_and_closest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: d.jsonl\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError,
                       match=r"unknown key `learning_rat` \(in .*r.yaml\)\. Did you mean `learning_rate`"):
        load_config(SFTConfig, recipe)


def test_unknown_flag_names_key():
    with pytest.raises(ConfigError, match=r"unknown key `lora_rank`.*Did you mean `lora_r`"):
        parse_flags(["--lora_rank", "8"], SFTConfig)


@pytest.mark.parametrize("flags, message", [
    (["--lora_r", "eight"], r"`lora_r` must be an integer, got 'eight' \(--lora_r\)"),
    (["--quantization", "3bit"], r"`quantization` must be one of 'none', '4bit', '8bit', got '3bit'"),
    (["--learning_rate", "-1"], r"`learning_rate` must be positive, got -1.0"),
    (["--lora_dropout", "1.5"], r"`lora_dropout` must be in \[0, 1\), got 1.5"),
    (["--packing", "maybe"], r"`packing` must be true or false, got 'maybe'"),
])
def test_wrong_values_name_field_value_and_allowed(flags, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SFTConfig, None, {"data": "d", **parse_flags(flags, SFTConfig)})


def test_yaml_type_errors_and_required_field(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: d\nmax_steps: [1]\n")
    with pytest.raises(ConfigError, match=r"`max_steps` must be an integer, got \[1\] \(in .*r.yaml\)"):
        load_config(SFTConfig, recipe)
    with pytest.raises(ConfigError, match=r"`data` must name a chat file"):
        load_config(SFTConfig)
    recipe.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(SFTConfig, recipe)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SFTConfig, tmp_path / "missing.yaml")


def test_quantized_base_needs_lora():
    with pytest.raises(ConfigError, match=r"`quantization` needs `lora: true`"):
        SFTConfig(data="d", quantization="4bit", lora=False)


def test_mixed_precision_reaches_the_trainer_arguments(monkeypatch):
    from foundation.training import trainer_arguments

    args = trainer_arguments(load_config(SFTConfig, None, {"data": "d", "mixed_precision": "bf16"}))
    assert args["bf16"] is True and args["fp16"] is False
    args = trainer_arguments(SFTConfig(data="d", mixed_precision="no"))
    assert args["bf16"] is False and args["fp16"] is False and args["activation_checkpointing"] is False
    import torch

    if not torch.cuda.is_available():  # auto on a CPU: bf16 autocast only where it multiplies bf16 natively
        for native in ("1", "0"):
            monkeypatch.setenv("ALIGN_NATIVE_BF16", native)
            assert trainer_arguments(SFTConfig(data="d"))["bf16"] is (native == "1")


@pytest.mark.parametrize("capability, native", [("avx2", False), ("default", False), (None, None)])
def test_precision_follows_the_cpu_in_one_place(capability, native):
    """`foundation.precision` under torch's AVX2 (or plain) kernels says no native bf16, whatever the CPU,
    and then every automatic choice is fp32; on this machine's own kernels it says what the CPU has."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ALIGN_NATIVE_BF16")}
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    probe = ("from foundation.precision import native_bf16, autocast_dtype, sampling_dtype, cpu_kind\n"
             "print(native_bf16(), autocast_dtype('auto'), sampling_dtype(), autocast_dtype('bf16'), "
             "cpu_kind())")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    has, auto, sampling, forced, kind = done.stdout.split()
    assert forced == "torch.bfloat16"                            # an explicit choice always wins
    if native is None:
        native = kind in ("AMX", "AVX512-BF16")
    assert has == str(native) and auto == ("torch.bfloat16" if native else "None")
    assert sampling == ("torch.bfloat16" if native else "torch.float32")
    assert ("precision: fp32" in done.stderr) is not native    # the choice is printed, once each
    assert done.stderr.count("training precision:") == 1 and done.stderr.count("sampling precision:") == 1


def test_every_recipe_loads_into_its_command_config():
    """Each recipe in recipes/ is valid for the command its README row names (no unknown keys)."""
    from pathlib import Path

    from align.cli import TRAIN_COMMANDS, _load
    from foundation.recipe import load_config

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    table = (recipes / "README.md").read_text()
    required = {"data": "x.jsonl", "prompts": "x.txt"}
    checked = 0
    for path in sorted(recipes.glob("*.yaml")):
        row = next(line for line in table.splitlines() if f"`{path.name}`" in line)
        command = row.split("`align ")[1].split("`")[0]
        cls = _load(TRAIN_COMMANDS[command].config)
        fields = set(cls.__dataclass_fields__)
        import yaml

        keys = set(yaml.safe_load(path.read_text()) or {})
        load_config(cls, path, {k: v for k, v in required.items() if k in fields and k not in keys})
        checked += 1
    assert checked >= 10


def test_loop_sections_from_yaml_and_dotted_flags(tmp_path):
    from align.loop.config import LoopConfig

    recipe = tmp_path / "loop.yaml"
    recipe.write_text("rounds: 3\npolicy:\n  model: some/model\n  lora_r: 8\ndpo:\n  beta: 0.2\n"
                      "reward:\n  max_length: 128\n")
    cfg = load_config(LoopConfig, recipe, parse_flags(["--policy.quantization", "4bit", "--dpo.beta=0.3",
                                                       "--generation.temperature", "0.8"], LoopConfig))
    assert cfg.rounds == 3 and cfg.policy.model == "some/model" and cfg.policy.lora_r == 8
    assert cfg.policy.quantization == "4bit" and cfg.dpo.beta == 0.3 and cfg.generation.temperature == 0.8
    assert cfg.reward.max_length == 128 and cfg.dpo.learning_rate == 2e-4      # the loop's default for DPO
    dpo = cfg.dpo_config(data="d.jsonl", output_dir="o")
    assert (dpo.model, dpo.quantization, dpo.lora_r, dpo.beta, dpo.seed) == ("some/model", "4bit", 8, 0.3, 0)
    rm = cfg.reward_config(data="d.jsonl", output_dir="o")
    assert rm.model == "builtin:minilm-l6" and rm.max_length == 128


@pytest.mark.parametrize("flags, message", [
    (["--dpo.bta", "1"], r"unknown key `dpo.bta` \(command line `--dpo.bta`\)\. Did you mean `dpo.beta`"),
    (["--dpo.model", "x"], r"unknown key `dpo.model`"),                  # the model lives in `policy:`
    (["--policy.quantisation", "4bit"], r"Did you mean `policy.quantization`"),
    (["--dpo.beta", "-1"], r"`dpo.beta` must be positive, got -1.0"),
    (["--policy.lora", "false", "--policy.quantization", "4bit"],
     r"`policy.quantization` needs `lora: true`"),
    (["--policy.lora", "false"], r"`round_start` builds on the last round's LoRA adapter: set policy.lora: "
                                 r"true, or round_start: retrain"),
    (["--policy.lora_r", "x"], r"`policy.lora_r` must be an integer, got 'x' \(--policy.lora_r\)"),
    (["--method", "ppo", "--ppo.cliprange", "2"], r"`ppo.cliprange` must be in \(0, 1\)"),
    (["--generation.top_p", "0"], r"`generation.top_p` must be in \(0, 1\]"),
    (["--max_adapter_scale", "0.5"], r"`max_adapter_scale` must be at least 1"),
    (["--eval_labels", "5"], r"`eval_labels` must be at least 10 \(fewer can never leave ½ at 95%\)"),
    (["--judge", "none"], r"`judge` must name a judge for simulated labelers \(labelers > 0\); `none` is for "
                          r"people \(labelers: 0\)"),
])
def test_loop_section_errors_name_the_dotted_key(flags, message):
    from align.loop.config import LoopConfig

    with pytest.raises(ConfigError, match=message):
        load_config(LoopConfig, None, parse_flags(flags, LoopConfig))


def test_a_section_in_yaml_must_be_a_mapping(tmp_path):
    from align.loop.config import LoopConfig

    recipe = tmp_path / "loop.yaml"
    recipe.write_text("dpo: 0.2\n")
    with pytest.raises(ConfigError, match=r"`dpo` is a section: give it as a mapping"):
        load_config(LoopConfig, recipe)
    recipe.write_text("dpo:\n  betta: 0.2\n")
    with pytest.raises(ConfigError, match=r"unknown key `dpo.betta` \(in .*loop.yaml\)"):
        load_config(LoopConfig, recipe)


def test_loop_help_lists_the_sections(capsys):
    from align.cli import main

    assert main(["loop", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("policy", "generation", "reward", "dpo", "ppo"):
        assert f"\n  {name}: (section)" in out
    assert "--policy.quantization" in out and "--dpo.beta" in out and "--ppo.target_kl" in out
    assert "--dpo.model" not in out and "--dpo.data" not in out and "--reward.data" not in out
