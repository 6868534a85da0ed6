"""The `align` command, in a real subprocess and through `main(argv)`."""

import json
import subprocess
import sys
import time

import pytest

from align.cli import main


def _align(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "align", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_is_fast_and_lists_commands():
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = _align("--help")
        times.append(time.perf_counter() - start)
        assert out.returncode == 0
    assert "sft" in out.stdout and "data" in out.stdout
    # no torch/transformers on the --help path (the 1-second promise; timed in benchmarks, checked here)
    probe = subprocess.run([sys.executable, "-c", "import sys, align.cli; sys.argv=['align','--help'];"
                            "import contextlib, io\n"
                            "with contextlib.redirect_stdout(io.StringIO()): align.cli.main()\n"
                            "print(sorted(m for m in ('torch','transformers','trl','datasets') "
                            "if m in sys.modules))"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "[]"
    assert min(times) < 5.0


def test_unknown_key_on_command_line_exits_2_naming_it(tmp_path):
    recipe = tmp_path / "any.yaml"
    recipe.write_text("data: prefs.jsonl\nmax_steps: 2\n")
    out = _align("sft", "--config", str(recipe), "--no_such_key", "1")
    assert out.returncode == 2
    assert "unknown key `no_such_key`" in out.stderr and "Valid keys:" in out.stderr


def test_unknown_key_in_yaml_exits_2_with_suggestion(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: prefs.jsonl\nlearnin_rate: 1\n")
    assert main(["sft", "--config", str(recipe)]) == 2
    assert "Did you mean `learning_rate`" in capsys.readouterr().err


def test_wrong_value_exits_2(capsys):
    assert main(["sft", "--data", "x.jsonl", "--max_steps", "many"]) == 2
    assert "`max_steps` must be an integer, got 'many' (--max_steps)" in capsys.readouterr().err


def test_unknown_command_suggests(capsys):
    assert main(["sfft"]) == 2
    assert "Did you mean sft" in capsys.readouterr().err


def test_command_help_lists_fields(capsys):
    assert main(["sft", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--learning_rate" in out and "--quantization" in out and "QLoRA" in out


def test_data_convert_shared_hh_to_jsonl(hh_file, tmp_path, capsys):
    out = tmp_path / "hh.jsonl"
    assert main(["data", "convert", str(hh_file), "--format", "hh", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1200 records, 0 ties" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1200 and set(rows[0]) >= {"prompt", "chosen", "rejected", "margin", "tie", "source"}


def test_data_convert_shared_finegrained_to_dataset(fg_file, tmp_path):
    out = _align("data", "convert", str(fg_file), "--format", "kway", "--out", str(tmp_path / "fg"))
    assert out.returncode == 0, out.stderr
    assert "3000 records, 384 ties, 2616 preference pairs, 0 rows skipped" in out.stdout
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "fg"))
    assert len(ds) == 3000 and sum(ds["tie"]) == 384


def test_data_convert_malformed_row_exit_1_then_skip(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n')
    assert main(["data", "convert", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2: missing field `rejected`" in err and "--skip-invalid" in err
    assert not (tmp_path / "o.jsonl").exists()
    assert main(["data", "convert", str(bad), "--out", str(tmp_path / "o.jsonl"), "--skip-invalid"]) == 0
    assert "1 records" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["data"], ["data", "convert"], ["data", "convert", "x", "--format", "xml",
                                                                     "--out", "o"]])
def test_data_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
