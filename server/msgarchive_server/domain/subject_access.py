"""A subject access production's cover: what GDPR Art. 15 says a person is told
beside the copy of their data.

The controller's own words come from a TOML file (`--subject-access FILE`):

    controller = "Acme Ltd, 1 Main St, privacy@acme.example"
    purposes = ["Sending the campaigns you subscribed to", "Proving what was sent"]
    categories = ["Your phone number and email address", "The messages sent to you"]
    recipients = ["Our SMS and email providers"]
    retention = "Seven years from sending (MiFID II), then deleted"
    rights = ["Rectification", "Restriction", "Objection", "A complaint to the ICO"]
    template = "cover-template.html"   # optional: a page of your own, with $names

and the cover adds what the production holds: how many messages, by channel,
from when to when. A template of your own is filled with Python's
`string.Template` ($controller, $purposes, ..., $count, $by_channel, $first,
$last, each already HTML-escaped; lists as <ul>); without one, a plain page.
"""

from __future__ import annotations

import html
import string
import tomllib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from msgarchive_server.domain import renditions
from msgarchive_server.domain.search import Found

FIELDS = ("controller", "purposes", "categories", "recipients", "retention", "rights")
_TITLES = {
    "controller": "Who holds your data",
    "purposes": "Why",
    "categories": "What data",
    "recipients": "Who it is shared with",
    "retention": "How long it is kept",
    "rights": "Your rights",
}


class CoverError(ValueError):
    """The subject-access file is unusable; the message says how, in one line."""


def load(path: Path) -> dict[str, Any]:
    """The controller's statements from `path`, each required field present."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise CoverError(f"--subject-access {path}: {err}") from None
    missing = [name for name in FIELDS if not data.get(name)]
    if missing:
        raise CoverError(f"--subject-access {path}: {', '.join(missing)} required")
    unknown = sorted(set(data) - {*FIELDS, "template"})
    if unknown:
        raise CoverError(f"--subject-access {path}: unknown setting {unknown[0]!r}")
    if data.get("template"):
        template = (path.parent / str(data["template"])).resolve()
        try:
            data["template"] = template.read_text()
        except OSError as err:
            raise CoverError(f"--subject-access {path}: template: {err.strerror}") from None
    return data


def _html(value: Any) -> str:
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{html.escape(str(v))}</li>" for v in value) + "</ul>"
    return f"<p>{html.escape(str(value))}</p>"


def cover(statements: dict[str, Any], found: Iterable[Found]) -> str:
    """The cover page of a production of `found` for the person it is about."""
    by_channel: Counter[str] = Counter()
    first = last = ""
    for item in found:
        by_channel[item.channel] += 1
        first = min(first, item.sent_time) if first else item.sent_time
        last = max(last, item.sent_time)
    values = {name: _html(statements[name]) for name in FIELDS}
    values |= {
        "count": str(by_channel.total()),
        "by_channel": _html([f"{channel}: {n}" for channel, n in sorted(by_channel.items())]),
        "first": html.escape(first or "-"),
        "last": html.escape(last or "-"),
    }
    if statements.get("template"):
        try:
            return string.Template(str(statements["template"])).substitute(values)
        except (KeyError, ValueError) as err:
            raise CoverError(f"the subject-access template names an unknown field: {err}") from None
    sections = [
        "<h1>A copy of the messages we sent you</h1>",
        f"<p>This production holds {values['count']} messages, sent from "
        f"{values['first']} to {values['last']}:</p>{values['by_channel']}",
        *(f"<h2>{_TITLES[name]}</h2>{values[name]}" for name in FIELDS),
        "<p>Each message is in its folder under items/, as it was stored, with a page "
        "to read it; README.txt says how anyone can check that nothing was changed.</p>",
    ]
    return renditions.page("Your data", "\n".join(sections))
