"""`align label import` and the store on bad input: one clear line naming the file and the problem,
a non-zero exit, no traceback, nothing stored (checked through the real CLI in a subprocess)."""

import gzip
import json
import subprocess
import sys

import pytest

from labeling_app import LabelStore

ROWS = [{"prompt": f"Review thing {i}.", "chosen": "Good.", "rejected": "Bad."} for i in range(50)]


def _import(store_url: str, path, *extra) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "align.cli", "label", "import", str(path), "--store", store_url, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _one_clear_line(result, *words) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def store_url(tmp_path):
    url = f"sqlite:///{tmp_path}/labels.db"
    LabelStore(url).add_records([])         # the store exists, with nothing in it
    return url


def test_binary_file(store_url, tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(bytes(range(256)) * 64)
    _one_clear_line(_import(store_url, path), str(path), "not UTF-8 text")
    assert LabelStore(store_url).pairs() == []


def test_truncated_gz(store_url, tmp_path):
    data = gzip.compress("\n".join(json.dumps(r) for r in ROWS).encode())
    path = tmp_path / "prefs.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    _one_clear_line(_import(store_url, path), str(path), "gzip data is damaged or cut short")
    assert LabelStore(store_url).pairs() == []          # all or nothing: not the readable half either


def test_empty_file_and_all_rows_malformed(store_url, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _one_clear_line(_import(store_url, empty), str(empty), "no pairs to import", "holds no rows")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p"}\n{"prompt": "q"}\n')
    _one_clear_line(_import(store_url, bad, "--skip-invalid"), str(bad), "all 2 rows were malformed")
    assert LabelStore(store_url).pairs() == []


def test_store_that_cannot_be_written(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path}/a-file/labels.db"
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in ROWS))
    _one_clear_line(_import(url, good), "cannot write the label store", "writable location")


def test_a_good_file_still_imports(store_url, tmp_path):
    good = tmp_path / "good.jsonl.gz"
    good.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in ROWS).encode()))
    result = _import(store_url, good)
    assert result.returncode == 0 and "imported 50 pairs" in result.stdout
