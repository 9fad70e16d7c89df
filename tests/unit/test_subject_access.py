"""The subject-access cover: the controller's words, and a template of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgarchive_server.domain import subject_access
from msgarchive_server.domain.search import Found

BASE = "\n".join(f'{name} = "{name} <said>"' for name in subject_access.FIELDS)


def found(channel: str, sent_at_ms: int) -> Found:
    return Found(sent_at_ms, channel, "c", "m", f"k{sent_at_ms}", "", "h", "", 1, "b", False)


def test_a_template_of_the_controllers_own_is_filled_escaped(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("<p>$count from $first: $controller</p>$by_channel")
    (tmp_path / "sa.toml").write_text(BASE + '\ntemplate = "t.html"\n')
    page = subject_access.cover(
        subject_access.load(tmp_path / "sa.toml"), [found("sms", 0), found("email", 1000)]
    )
    assert page.startswith("<p>2 from 1970-01-01T00:00:00.000Z: <p>controller &lt;said&gt;</p>")
    assert "<li>email: 1</li><li>sms: 1</li>" in page


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('\ntemplate = "t.html"\n', "names an unknown field"),
        ("\nlanguage = 'en'\n", "unknown setting 'language'"),
    ],
)
def test_a_bad_file_or_template_says_why(tmp_path: Path, extra: str, says: str) -> None:
    (tmp_path / "t.html").write_text("$nosuchfield")
    (tmp_path / "sa.toml").write_text(BASE + extra)
    with pytest.raises(subject_access.CoverError, match=says):
        subject_access.cover(subject_access.load(tmp_path / "sa.toml"), [])
