"""An export's state: a long conversation goes into RSMF files of a bounded
number of messages each, in order, so that memory holds one file's at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgarchive_server.domain import production


def test_a_long_conversation_is_split_into_numbered_rsmf_files_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(production, "RSMF_EVENTS", 2)
    state = production._State(tmp_path / "state.sqlite")
    talks = {
        "sms-1-2026-12-01.rsmf": 5,
        "sms-2-2026-12-01.rsmf": 2,
        "whatsapp-1-2026-12-01.rsmf": 1,
    }
    n = 0
    for name, count in talks.items():
        for _ in range(count):
            n += 1
            state.item_done(n, {"n": n}, (name, {"n": n}))
    files = [(name, [m["n"] for m in messages]) for name, messages in state.conversations()]
    assert files == [
        ("sms-1-2026-12-01.rsmf", [1, 2]),
        ("sms-1-2026-12-01.2.rsmf", [3, 4]),
        ("sms-1-2026-12-01.3.rsmf", [5]),
        ("sms-2-2026-12-01.rsmf", [6, 7]),
        ("whatsapp-1-2026-12-01.rsmf", [8]),
    ]
    state.close()
