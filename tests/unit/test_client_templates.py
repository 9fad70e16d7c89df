"""The Go and Java `buf generate` templates: valid buf v2 templates whose
every plugin is named and pinned to a version, and the README shows a sender
in each language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("language", ["go", "java"])
def test_each_template_pins_every_plugin(language: str) -> None:
    template = yaml.safe_load((ROOT / "client" / language / "buf.gen.yaml").read_text())
    assert template["version"] == "v2"
    plugins = template["plugins"]
    assert len(plugins) == 2  # the messages, and the gRPC stubs
    for plugin in plugins:
        name, _, version = plugin["remote"].partition(":")
        assert name.startswith("buf.build/"), name
        assert re.fullmatch(r"v\d+(\.\d+)+", version), plugin
        assert plugin["out"]


def test_the_readme_shows_a_sender_in_each_language() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "```go\n" in readme
    assert "```java\n" in readme
    for template in ("client/go/buf.gen.yaml", "client/java/buf.gen.yaml"):
        assert template in readme
