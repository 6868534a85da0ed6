"""Preference readers: real shared data (HH-RLHF, FineGrainedRLHF), generic formats, malformed rows."""

import gzip
import json

import pytest

from foundation.errors import DataError
from foundation.readers import parse_hh_transcript, read_preferences
from foundation.records import PreferenceRecord, to_hf_dataset, write_jsonl


def test_hh_rlhf_shared_file_gives_1200_records(hh_file):
    data = read_preferences(hh_file)  # auto-detects HH, reads .gz transparently
    assert data.format == "hh"
    assert len(data.records) == 1200 and data.ties == 0 and not data.skipped
    first = data.records[0]
    assert [m["role"] for m in first.prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert first.prompt[0]["content"] == "what are some pranks with a pen i can do?"
    assert first.prompt[-1]["content"] == "okay some of these do not have anything to do with pens"
    assert first.chosen[0]["role"] == "assistant" and first.chosen[0]["content"].startswith("No, sorry!")
    assert first.chosen != first.rejected
    for r in data.records:
        assert r.prompt[-1]["role"] == "user"


def test_finegrained_shared_file_gives_2616_pairs_and_384_ties(fg_file):
    data = read_preferences(fg_file, "kway")
    assert len(data.records) == 3000
    assert data.ties == 384 and len(data.records) - data.ties == 2616
    # The first item's judgements are [0, 1, 2, 1, 0, 2] over pairs (1,2),(1,3),(1,4),(2,3),(2,4),(3,4).
    items = json.loads(fg_file.read_text())
    r = data.records[:6]
    assert r[0].tie and r[4].tie and not r[1].tie
    assert r[1].chosen[0]["content"] == items[0]["prediction 1"]
    assert r[1].rejected[0]["content"] == items[0]["prediction 3"]
    assert r[2].chosen[0]["content"] == items[0]["prediction 4"]   # judgement 2: the second is better
    assert r[0].prompt[0]["content"].startswith("When does bloom by troye sivan come out?\n\nPassages:")


def test_hh_transcript_parsing():
    msgs = parse_hh_transcript("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye", where="x")
    assert msgs == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "bye"}]


def test_malformed_hh_row_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"chosen": "\n\nHuman: a\n\nAssistant: yes", "rejected": "\n\nHuman: a\n\nAssistant: no"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"chosen": 3, "rejected": "x"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field `chosen`"):
        read_preferences(path, "hh")
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not valid JSON"):
        read_preferences(path, "hh")
    data = read_preferences(path, "hh", skip_invalid=True)
    assert len(data.records) == 1 and sum(data.skipped.values()) == 1


def test_skip_invalid_counts_reasons(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"},
            {"prompt": "q", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "b", "margin": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = read_preferences(path, skip_invalid=True)
    assert len(data.records) == 1
    assert sum(data.skipped.values()) == 3
    assert data.skipped["missing field `rejected`."] == 1
    assert "3 rows skipped" in data.summary()


def test_plain_and_conversational_records_jsonl_gz(tmp_path):
    path = tmp_path / "recs.jsonl.gz"
    rows = [
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away.", "margin": 2, "labeler": "ann"},
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}], "tie": True},
        # TRL's implicit-prompt form: whole conversations sharing their first turn.
        {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
         "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]},
    ]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    recs = read_preferences(path).records
    assert recs[0] == PreferenceRecord(prompt=[{"role": "user", "content": "Hi?"}],
                                       chosen=[{"role": "assistant", "content": "Hello!"}],
                                       rejected=[{"role": "assistant", "content": "Go away."}],
                                       margin=2.0, labeler="ann")
    assert recs[1].tie and recs[1].chosen[0]["content"] == "4"
    assert recs[2].prompt == [{"role": "user", "content": "Q"}] and recs[2].rejected[0]["content"] == "bad"


def test_csv_parquet_and_saved_dataset_round_trip(tmp_path):
    recs = [PreferenceRecord(prompt=[{"role": "user", "content": f"q{i}"}],
                             chosen=[{"role": "assistant", "content": f"good {i}"}],
                             rejected=[{"role": "assistant", "content": f"bad {i}"}], margin=i / 2)
            for i in range(5)]
    write_jsonl(recs, tmp_path / "r.jsonl")
    assert read_preferences(tmp_path / "r.jsonl").records == recs
    ds = to_hf_dataset(recs)
    ds.save_to_disk(str(tmp_path / "ds"))
    assert read_preferences(tmp_path / "ds").records == recs
    ds.to_parquet(str(tmp_path / "r.parquet"))
    assert read_preferences(tmp_path / "r.parquet").records == recs
    (tmp_path / "r.csv").write_text("prompt,chosen,rejected\nq0,good 0,bad 0\n\"q,1\",good 1,bad 1\n")
    csv_recs = read_preferences(tmp_path / "r.csv").records
    assert [r.prompt[0]["content"] for r in csv_recs] == ["q0", "q,1"]
    assert csv_recs[1].chosen == [{"role": "assistant", "content": "good 1"}]


def test_kway_generic_and_bad_judgement(tmp_path):
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps({"prompt": "p", "responses": ["a", "b", "c"], "preference": [1, 2, 0]}) + "\n"
                    + json.dumps({"prompt": "p", "responses": ["a", "b"], "preference": [7]}) + "\n")
    with pytest.raises(DataError, match=r"k.jsonl, line 2, field `preference`"):
        read_preferences(path, "kway")
    recs = read_preferences(path, "kway", skip_invalid=True).records
    assert [(r.chosen[0]["content"], r.rejected[0]["content"], r.tie) for r in recs] == [
        ("a", "b", False), ("c", "a", False), ("b", "c", True)]


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_preferences(tmp_path / "nope.jsonl")
    (tmp_path / "x.jsonl").write_text("{}")
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read_preferences(tmp_path / "x.jsonl", "xml")
