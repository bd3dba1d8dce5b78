"""nas.storage: the study's storage; passwords never shown or written; a journal cut off
mid-write is mended (the real crash and disk-full paths: tests/test_faults.py)."""

from __future__ import annotations

import json

from nas.storage import open_storage, open_study, repair_journal, shown_url, url_without_password

URL = "postgresql+psycopg2://nas:hunter2@db.example:5432/nas"


def test_a_password_is_masked_when_shown_and_left_out_when_written():
    assert "hunter2" not in shown_url(URL) and "***" in shown_url(URL)
    assert url_without_password(URL) == "postgresql+psycopg2://nas@db.example:5432/nas"
    assert url_without_password("sqlite:///x.db") == "sqlite:///x.db"
    assert shown_url("not a url") == "not a url"


def test_a_cut_off_last_record_is_dropped_and_the_damaged_file_kept(tmp_path):
    study = open_study("j", open_storage(tmp_path))
    study.set_user_attr("before", 1)
    journal = tmp_path / "journal.log"
    whole = journal.read_bytes()
    assert repair_journal(journal) is None  # whole: left alone
    journal.write_bytes(whole + b'{"op_code": 8, "worker_id": "x", "stud')  # a writer died here
    said = repair_journal(journal)
    assert said is not None and "1 damaged line(s) dropped" in said
    assert journal.read_bytes() == whole
    assert len(list(tmp_path.glob("journal.log.damaged-*"))) == 1
    again = open_study("j", open_storage(tmp_path))
    assert again.user_attrs == {"before": 1}


def test_a_record_glued_to_a_cut_off_one_is_kept(tmp_path):
    study = open_study("g", open_storage(tmp_path))
    study.set_user_attr("a", 1)
    journal = tmp_path / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    last = lines[-1]
    json.loads(last)  # a whole record
    journal.write_bytes(b"".join(lines[:-1]) + b'{"op_code": 8, "cut' + last)
    assert repair_journal(journal) is not None
    assert open_study("g", open_storage(tmp_path)).user_attrs == {"a": 1}
