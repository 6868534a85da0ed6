"""Ratings and rankings end to end, as the issue checks them: import through the CLI, a real
`align label serve`, simulated labelers through the documented API (`align label simulate --kind`),
the export, and training on it: the rankings' pairwise records in TRL's RewardTrainer, the ratings in
`align kto` on a tiny model."""

import json

import pytest

from align.cli import main
from foundation.candidates import Candidate, CandidateSet, write_candidates
from labeling_app import LabelStore
from tests.test_label_server import align

REVIEWS = ["The kettle is wonderful, fast and quiet.", "The kettle is terrible and leaks.",
           "The kettle boils water.", "A lovely, excellent kettle; I love it.", "Awful kettle, broken lid."]


def candidates(path, prompts: int = 8):
    sets = [CandidateSet(f"p{i}", [{"role": "user", "content": f"Review kettle model {i}."}],
                         [Candidate(f"{r} (model {i})") for r in REVIEWS]) for i in range(prompts)]
    write_candidates(sets, path)
    return path


@pytest.fixture
def served(label_server, tmp_path):
    server = label_server(k=3)
    return server, server.store_url


def test_rankings_from_import_to_trl_reward_trainer(served, tmp_path, tiny_llama):
    server, store = served
    out = align("label", "import", str(candidates(tmp_path / "c.jsonl")), "--as", "ranking", "--store", store)
    assert out.returncode == 0 and "imported 8 ranking tasks" in out.stdout, out.stderr
    server.start()
    sim = align("label", "simulate", "--url", server.url, "--labelers", "3", "--kind", "ranking",
                "--store", store, "--temperature", "0")
    assert sim.returncode == 0, sim.stderr
    assert json.loads(sim.stdout.strip().splitlines()[-1])["labels"] == 24          # 8 tasks x k = 3
    s = LabelStore(store)
    assert sorted(s.tasks.counts("ranking").values()) == [3] * 8
    rankings = s.tasks.answers("ranking")
    # VADER through a round robin: the most positive review ranks first for everyone
    assert all(a.answer.index(1) == 3 for a in rankings)
    exported = align("label", "export", "--out", str(tmp_path / "export"), "--store", store)
    assert exported.returncode == 0 and "240 ranking pairs" in exported.stdout, exported.stdout
    stats = json.loads((tmp_path / "export" / "tasks.json").read_text())
    assert stats["ranking_answers"] == 24 and stats["ranking_alpha"] > 0.9
    shown = json.loads(align("label", "stats", "--json", "--store", store).stdout)
    assert shown["tasks"]["ranking_answers"] == 24 and shown["tasks"]["ranking_alpha"] > 0.9

    import trl
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = load_from_disk(str(tmp_path / "export" / "ranking_pairs"))["train"]
    assert len(train) == 24 * 10 and set(train["source"]) == {"ranking"}
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    trainer = trl.RewardTrainer(model=rm, processing_class=tok, train_dataset=train,
                                args=trl.RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=2,
                                                      per_device_train_batch_size=4, report_to="none",
                                                      use_cpu=True, save_strategy="no"))
    assert trainer.train().training_loss > 0


def test_ratings_from_import_to_align_kto(served, tmp_path, tiny_llama):
    server, store = served
    out = align("label", "import", str(candidates(tmp_path / "c.jsonl", prompts=4)), "--as", "rating",
                "--store", store)
    assert out.returncode == 0 and "imported 20 rating tasks" in out.stdout, out.stderr
    server.start()
    sim = align("label", "simulate", "--url", server.url, "--labelers", "3", "--kind", "rating",
                "--store", store, "--threshold", "0.3")
    assert sim.returncode == 0, sim.stderr
    s = LabelStore(store)
    assert sorted(s.tasks.counts("rating").values()) == [3] * 20
    exported = align("label", "export", "--out", str(tmp_path / "export"), "--store", store)
    assert exported.returncode == 0 and "60 ratings" in exported.stdout, exported.stdout
    from datasets import load_from_disk

    kto = load_from_disk(str(tmp_path / "export" / "kto"))
    assert len(kto) == 20 and sum(kto["label"]) == 8                   # the two positive reviews x 4
    assert set(kto.column_names) == {"prompt", "completion", "label"}
    # `align kto` through main(argv) in this process (the CLI's own process is tested above: the
    # import and the simulation), saving two imports of torch, transformers and trl
    kto_args = ["kto", "--model", tiny_llama, "--data", str(tmp_path / "export" / "kto"), "--output_dir",
                str(tmp_path / "kto-out"), "--per_device_train_batch_size", "4", "--max_length", "64"]
    assert main([*kto_args, "--max_steps", "2", "--save_steps", "1"]) == 0
    assert (tmp_path / "kto-out" / "adapter_model.safetensors").is_file()
    assert main([*kto_args, "--max_steps", "3", "--resume", "true"]) == 0
    state = json.loads((tmp_path / "kto-out" / "trainer_state.json").read_text())
    assert state["global_step"] == 3                                  # resumed from step 2, not redone


def test_kto_data_errors_name_the_row_and_field(tmp_path, tiny_llama, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "completion": "yo", "label": true}\n{"prompt": "hi", "completion": "x", '
                   '"label": "yes"}\n')
    assert main(["kto", "--model", tiny_llama, "--data", str(bad), "--output_dir", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "bad.jsonl: line 2: `label` must be true or false" in err and "Traceback" not in err
    one_kind = tmp_path / "good.jsonl"
    one_kind.write_text('{"prompt": "hi", "completion": "yo", "label": true}\n')
    assert main(["kto", "--model", tiny_llama, "--data", str(one_kind), "--output_dir",
                 str(tmp_path / "o")]) != 0
    assert "KTO needs both kinds" in capsys.readouterr().err
