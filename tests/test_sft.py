"""`align sft` on a tiny Llama: trains the adapter on completions, saves it, resumes."""

import json

from align.cli import main
from align.sft.data import read_sft_examples


def _prefs(tmp_path, n=16):
    path = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"Write a review of product {i}.", "chosen": "I love it, it is great.",
             "rejected": "I hate it."} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_sft_examples_from_preferences_and_messages(tmp_path):
    rows = read_sft_examples(str(_prefs(tmp_path, 3)))
    assert rows[0] == {"prompt": [{"role": "user", "content": "Write a review of product 0."}],
                       "completion": [{"role": "assistant", "content": "I love it, it is great."}]}
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}))
    assert read_sft_examples(str(chat)) == [{"prompt": [{"role": "user", "content": "hi"}],
                                             "completion": [{"role": "assistant", "content": "hello"}]}]


def test_sft_trains_saves_and_resumes(tiny_llama, tmp_path):
    out = tmp_path / "sft"
    args = ["sft", "--model", tiny_llama, "--data", str(_prefs(tmp_path)), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--lora_r", "4",
            "--save_steps", "2", "--logging_steps", "1"]
    assert main(args + ["--max_steps", "2"]) == 0
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "checkpoint-2").is_dir()
    from safetensors.torch import load_file

    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [t for n, t in adapter.items() if "lora_B" in n]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: training moved it
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert main(args + ["--max_steps", "4", "--resume"]) == 0
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4]
