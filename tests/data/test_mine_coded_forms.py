"""Mining the shared data for coded harm words the pattern database does not name (issue 16)."""

import json
from pathlib import Path

from data.mine_coded_forms import main, mine
from normalizer import Normalizer, load_database

MINI = Path(__file__).resolve().parent.parent / "fixtures" / "mini_patterns.json"


def test_a_coded_word_no_entry_names_becomes_an_entry_with_its_forms_examples_and_sources():
    rows = [("those b*stards again", "set_a"), ("ba**ards, all of them", "set_b"), ("b*stards", "set_a")]
    rows += [("bastards everywhere", "set_c")] * 3  # written plainly in three texts: a word people use
    rows += [("ring me at $table1 tonight", "set_a")]  # "stablei" is written by nobody
    stats: dict = {}
    [entry] = mine(Normalizer(load_database(MINI)), rows, stats=stats)
    # every text Stage 1 rewrites a coded form in counts, "$table1" too: b*stards, ba**ards, $table1; 2 words
    assert stats == {"texts": 4, "forms": 3, "words": 2}
    assert entry["id"] == "profanity.shared_bastards" and entry["replacement"] == "bastards"
    assert entry["forms"] == ["b*stards", "ba**ards"]  # the most frequent first
    assert entry["source"] == ["shared_set_a", "shared_set_b"]
    assert entry["examples"]["positive"] == ["b*stards", "ba**ards, all of them"]


def test_written_entries_pass_the_validator_and_a_second_mining_changes_nothing(tmp_path, monkeypatch, capsys):
    import polars as pl

    db = tmp_path / "db.json"
    db.write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    texts = ["those b*stards again"] + ["bastards everywhere"] * 3
    frame = pl.DataFrame({"text": texts, "label": ["harmful"] * 4, "source": ["set_a"] * 4})
    monkeypatch.setattr("data.readers.load_shared_sources", lambda: frame)
    before = json.loads(db.read_text(encoding="utf-8"))["version"]
    assert main(["--db", str(db), "--write"]) == 0
    written = json.loads(db.read_text(encoding="utf-8"))
    assert written["version"] != before and "shared_set_a" in written["sources"]
    loaded = load_database(db)  # the validator accepts it
    assert Normalizer(loaded).normalize("those b*stards again").matches[0].entry_id == "profanity.shared_bastards"
    assert main(["--db", str(db), "--write"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert json.loads(db.read_text(encoding="utf-8")) == written
