"""The README's settings table is the settings the sidecar has."""

from __future__ import annotations

from pathlib import Path

from msgarchive_server.process.config import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    assert len(OPTIONS) >= 30  # the settings are there to check
    for option in OPTIONS:
        written = option.written_default
        default = f"`{written}`" if written is not None else "unset"
        row = f"| `{option.flag}` | `{option.env}` | {default} | {option.help} |"
        assert row in README, row


def test_the_readme_starts_with_the_two_commands() -> None:
    head = README.split("\n---\n")[0]
    assert "make run" in head
    assert "make test" in head


def test_every_metric_is_in_the_readme() -> None:
    from msgarchive_server.telemetry.metrics import Metrics

    families = list(Metrics().registry.collect())
    assert len(families) >= 10  # the metrics are there to check
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` |" in README, name
