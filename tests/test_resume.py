"""Every trainer resumes after `kill -9`: N steps, kill, `--resume` to 2N equals 2N steps straight."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from align.cli import main


def _prefs(tmp_path, n=16):
    path = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"Write a review of product {i}.", "chosen": "I love it, it is great.",
             "rejected": "I hate it.", "margin": (i % 4) / 3} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _weights(folder):
    from safetensors.torch import load_file

    name = ("adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists()
            else "model.safetensors")
    return load_file(str(folder / name))


@pytest.mark.parametrize("command, model, extra", [
    ("sft", "tiny_llama", ["--lora_r", "4"]),
    ("dpo", "tiny_llama", ["--lora_r", "4", "--precompute_ref_log_probs", "false"]),
    ("reward train", "tiny_bert", []),
])
def test_kill_then_resume_equals_straight_run(command, model, extra, request, tmp_path):
    common = [*command.split(), "--model", request.getfixturevalue(model), "--data", str(_prefs(tmp_path)),
              "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--save_steps", "2",
              "--max_steps", "4", *extra]
    straight = tmp_path / "straight"
    assert main([*common, "--output_dir", str(straight)]) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "align", *common, "--output_dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (killed / "checkpoint-4").exists():  # it raced past step 4 before the kill: redo the second half
        shutil.rmtree(killed / "checkpoint-4")
    assert main([*common, "--output_dir", str(killed), "--resume"]) == 0
    state = json.loads((killed / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_resume_passes_over_a_checkpoint_killed_while_it_was_written(tmp_path, capsys):
    """A kill while the Trainer writes `checkpoint-4` leaves its trainer_state.json empty (or absent): the
    run resumes from checkpoint-2 rather than failing on the half-written one."""
    from foundation.training import last_checkpoint

    for step, state in ((2, json.dumps({"global_step": 2})), (4, ""), (6, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-4 is incomplete" in capsys.readouterr().err
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{")
    assert last_checkpoint(str(tmp_path)) is None
