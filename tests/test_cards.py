"""Model cards with lineage (`foundation.cards`): what `align dpo` and `align reward train` write in place
of peft's empty template, and `align lineage` reading it back."""

import json
import subprocess
import sys

from foundation.cards import Lineage, base_model_id, lineage_chain, public_url, read_lineage, write_card


def test_the_card_names_the_hub_id_behind_a_builtin_alias_and_hides_store_passwords(tmp_path):
    assert base_model_id("builtin:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_id("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert base_model_id(str(tmp_path)) is None                        # a local folder: no hub id
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "builtin:minilm-l6"}))
    assert base_model_id(str(adapter)) == "sentence-transformers/all-MiniLM-L6-v2"
    assert public_url("postgresql+psycopg://ann:s3cret!@db:5432/labels") == "postgresql+psycopg://ann:***@db:5432/labels"
    assert public_url("sqlite:////tmp/labels.db") == "sqlite:////tmp/labels.db"


def test_a_card_round_trips_its_lineage_and_chains_to_its_parent(tmp_path):
    parent, child = tmp_path / "round-1", tmp_path / "round-2"
    parent.mkdir(), child.mkdir()
    write_card(parent, Lineage(method="loop round 1 (DPO)", base_model="builtin:smollm2-135m-instruct",
                               data={"labels so far": 120}))
    lineage = Lineage(method="loop round 2 (DPO)", base_model="builtin:smollm2-135m-instruct",
                      parent=str(parent),
                      results=[{"name": "labelers' win rate vs round 1", "value": 0.64,
                                "interval": [0.55, 0.72], "n": 140}])
    card = write_card(child, lineage).read_text()
    assert card.startswith("---\n") and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "library_name: peft" in card and "model-index:" in card and "value: 0.64" in card
    assert ("More Information Needed" not in card
            and "| labelers' win rate vs round 1 | 0.640 | [0.55, 0.72] | 140 |" in card)
    assert read_lineage(child) == lineage
    assert [folder for folder, _ in lineage_chain(child)] == [str(child), str(parent)]


def test_align_dpo_writes_a_card_and_align_lineage_prints_it(tiny_llama, tmp_path):
    from align.cli import main

    data = tmp_path / "prefs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Review {i}.", "chosen": "Great.", "rejected": "Bad."})
                              for i in range(8)))
    out = tmp_path / "dpo"
    assert main(["dpo", "--model", tiny_llama, "--data", str(data), "--output_dir", str(out),
                 "--max_steps", "1", "--per_device_train_batch_size", "4", "--lora_r", "4", "--beta", "0.2",
                 "--save_steps", "100"]) == 0
    lineage = read_lineage(out)
    assert lineage.method == "DPO" and lineage.base_model == tiny_llama and lineage.adapter
    assert lineage.data == {"file": str(data), "rows": 8}
    assert (lineage.settings["beta"] == 0.2 and lineage.settings["lora_r"] == 4
            and "output_dir" not in lineage.settings)
    assert "More Information Needed" not in (out / "README.md").read_text()
    checkpoint = read_lineage(out / "checkpoint-1")         # the Trainer's final checkpoint has one too
    assert checkpoint.method == "DPO, checkpoint at step 1" and checkpoint.settings == lineage.settings
    shown = subprocess.run([sys.executable, "-m", "align.cli", "lineage", str(out)],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{out}: DPO of {tiny_llama}") and "beta 0.2" in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "align.cli", "lineage", str(tmp_path / "nope")],
                             capture_output=True, text=True)
    assert (missing.returncode == 1 and "no such folder" in missing.stderr
            and "Traceback" not in missing.stderr)
