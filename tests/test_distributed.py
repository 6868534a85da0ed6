"""Two data-parallel processes on this CPU (gloo) through `accelerate launch`: the reward, DPO and PPO
trainers give what one process gives with the same global batch (reward, DPO: 2 × 4 against 1 × 4 with
2 accumulation steps; PPO: 2 × 2 rollouts against 1 × 4 sampled in chunks of 2), and only rank 0 writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from foundation.records import PreferenceRecord, write_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "recipes" / "accelerate" / "cpu-2proc.yaml"


@pytest.fixture(scope="module")
def prefs(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dist") / "prefs.jsonl"
    write_jsonl([PreferenceRecord(prompt=[{"role": "user", "content": f"Review item {i}"}],
                                  chosen=[{"role": "assistant",
                                           "content": "I love this product, it is great " * (1 + i % 3)}],
                                  rejected=[{"role": "assistant",
                                             "content": "terrible, I hate waiting " * (1 + i % 2)}])
                 for i in range(16)], path)
    return str(path)


def launch(out: Path, processes: int, command: list[str], extra: list[str] | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if processes == 2:
        env["ACCELERATE_USE_CPU"] = "1"
        import socket

        with socket.socket() as sock:                   # a free rendezvous port: runs never collide
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
               "--main_process_port", str(port), "-m", "align.cli"]
        extra = ["--per_device_train_batch_size", "4"] if extra is None else extra
    else:   # one process: this one, on one thread as each of the two has (no second import of torch)
        extra = (["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2"] if extra is None
                 else extra)
        return in_process([*command, *extra, "--output_dir", str(out)])
    result = subprocess.run([*cmd, *command, *extra, "--output_dir", str(out)], env=env, capture_output=True,
                            text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, "\n".join(line for line in result.stderr.splitlines()
                                             if "arn" not in line and "%|" not in line)[-4000:]
    return result


def in_process(argv: list[str]) -> subprocess.CompletedProcess:
    """`align ARGV` through main() in this process, on one thread, its stdout captured."""
    import contextlib
    import io

    from align.cli import main

    threads, out = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return subprocess.CompletedProcess(argv, code, out.getvalue(), "")


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize("trainer", ["reward", "dpo"])
def test_two_processes_match_one(trainer, prefs, tiny_bert, tiny_llama, tmp_path):
    if trainer == "reward":
        command = ["reward", "train", "--model", tiny_bert, "--data", prefs, "--max_steps", "2",
                   "--seed", "1", "--mixed_precision", "no", "--learning_rate", "1e-3", "--save_steps", "100"]
    else:
        command = ["dpo", "--model", tiny_llama, "--data", prefs, "--max_steps", "2", "--seed", "1",
                   "--mixed_precision", "no", "--learning_rate", "1e-3", "--save_steps", "100",
                   "--max_length", "64"]
    one = launch(tmp_path / "one", 1, command)
    two = launch(tmp_path / "two", 2, command)
    assert one.stdout.count("done; output in") == 1
    assert two.stdout.count("done; output in") == 1                # rank 0 only, though both ranks trained
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys() and a
    # the same two batches of 4, one thread each, their gradients averaged by accumulation or by gloo: two
    # terms, halved, so equal to the bit on these CPUs; the tolerance is slack for another reduction order
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-5, rtol=1e-4), (name, (a[name] - b[name]).abs().max())
    # the backbone moved (DPO saves only the adapter: its B starts at 0)
    if trainer == "reward":
        base = {f"bert.{k}": v for k, v in weights(Path(tiny_bert)).items()}
        assert sum(not torch.equal(a[n], base[n]) for n in a if n in base) > 10
    else:
        assert any(a[n].abs().sum() > 0 for n in a if "lora_B" in n)


def test_ppo_two_processes_match_one(tiny_llama, tmp_path):
    """Each process samples and scores its half of the update's rollouts (sampling seeded per chunk),
    every process gets all of them back for the whitening and the minibatches, and gradients are
    summed: 2 processes × 2 rollouts give the adapter and value head that 1 process × 4 gives."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Write about topic {i}{' and more' * (i % 3)}\n" for i in range(16)))
    command = ["ppo", "--model", tiny_llama, "--prompts", str(prompts), "--reward_model",
               "tests.test_ppo:letters_share", "--max_steps", "3", "--seed", "1", "--learning_rate", "1e-2",
               "--max_new_tokens", "8", "--ppo_epochs", "2", "--save_steps", "100",
               "--generation_batch_size", "2", "--mixed_precision", "no"]
    one = launch(tmp_path / "one", 1, command,
                 ["--per_device_train_batch_size", "4", "--mini_batch_size", "2"])
    two = launch(tmp_path / "two", 2, command,
                 ["--per_device_train_batch_size", "2", "--mini_batch_size", "1"])
    assert one.stdout.count("done; output in") == 1 and two.stdout.count("done; output in") == 1
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys() and any(a[n].abs().sum() > 0 for n in a if "lora_B" in n)
    # fp32: one forward of a minibatch's 2 rows against one row a process, gradients summed by gloo (other
    # batch shapes, other summation orders), carried through 12 Adam steps: up to 1.6e-6 apart on these CPUs
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), (name, (a[name] - b[name]).abs().max())
    head_a, head_b = (torch.load(tmp_path / side / "value_head.pt") for side in ("one", "two"))
    assert head_a["weight"].abs().sum() > 0
    for name in head_a:
        assert torch.allclose(head_a[name], head_b[name], atol=1e-5, rtol=1e-4), name
    import json

    metrics = [[json.loads(line) for line in (tmp_path / side / "metrics.jsonl").open()]
               for side in ("one", "two")]
    assert len(metrics[0]) == len(metrics[1]) == 3
    for m1, m2 in zip(*metrics):             # the same rollouts: the same rewards and KL, update by update
        assert m1["rewards/mean"] == pytest.approx(m2["rewards/mean"], abs=1e-6)
        assert m1["objective/kl"] == pytest.approx(m2["objective/kl"], abs=1e-4)
    assert sorted(p.name for p in (tmp_path / "two").glob("checkpoint-*")) == ["checkpoint-3"]


def test_loop_under_two_processes(tiny_llama, tiny_bert, tmp_path):
    """`align loop` with PPO under `accelerate launch`: both processes train the reward model and the
    policy; rank 0 alone samples, serves the app, owns the store, evaluates and reports."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Write a review of thing {i}\n" for i in range(12)))
    out = tmp_path / "loop"
    command = ["loop", "--policy.model", tiny_llama, "--prompts", str(prompts), "--reward.model", tiny_bert,
               "--judge", "tests.test_loop:longer_judge", "--rounds", "1", "--candidates_per_prompt", "2",
               "--pairs_per_round", "4", "--k", "1", "--labelers", "2", "--method", "ppo",
               "--ppo.max_steps", "2", "--ppo.per_device_train_batch_size", "4", "--ppo.mini_batch_size", "2",
               "--ppo.max_new_tokens", "8", "--generation.max_new_tokens", "8",
               "--reward.num_train_epochs", "1", "--eval_labels", "12", "--output_dir", str(out)]
    result = launch(out, 2, command[:-2], [])
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("align loop: final") for line in lines) == 1                # rank 0 only
    assert "win rate" in lines[-1]
    assert sum(line.startswith("[round 1/1]") for line in lines) == 6
    import json

    from labeling_app import LabelStore

    state = json.loads((out / "loop_state.json").read_text())
    assert state["rounds"]["1"]["done"] == ["generate", "select", "label", "reward", "policy", "evaluate"]
    store = LabelStore(f"sqlite:///{out}/labels.db")
    train = {p.pair_id for p in store.pairs()}                   # the evaluation's pairs are rank 0's too
    assert len([x for x in store.labels() if x.pair_id in train]) == 4  # no pair labeled twice
    assert state["rounds"]["1"]["evaluation"]["initial"]["labelers"]["labels"] >= 1
    assert (out / "round-1" / "ppo" / "adapter_model.safetensors").exists()
    assert len(list((out / "round-1" / "ppo").glob("checkpoint-*"))) == 1
    assert (out / "report.md").exists()
