"""The console's view of one account's store: one search kept open, reopened
when it is older than the refresh interval, and always read before use."""

from __future__ import annotations

import types
from typing import Any, cast

from msgarchive_server.domain.search import Search, SearchQuery
from msgarchive_server.edge.console.app import Archive
from msgarchive_server.stores import Store


class FakeSearch:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.manifests: dict[str, str] = {}

    def prepare(self, query: SearchQuery) -> None:
        self.log.append("prepare")
        self.manifests = {"_msgarchive/manifests/w/2026/12/01/00/manifest.parquet": "path"}

    def close(self) -> None:
        self.log.append("close")


def test_a_search_is_reopened_when_stale_and_read_before_it_is_used() -> None:
    log: list[str] = []
    now = [0.0]
    opened: list[FakeSearch] = []

    def open_search() -> Search:
        opened.append(FakeSearch(log))
        return cast(Search, opened[-1])

    store = cast(Store, types.SimpleNamespace(prefix=""))
    archive = Archive("acme", store, open_search, 10.0, clock=lambda: now[0])
    seen: list[Any] = []
    for at in (0.0, 5.0, 10.0, 25.0):
        now[0] = at
        with archive.search() as search:
            seen.append(search)
            assert search.manifests  # read before the caller sees it
    assert len(opened) == 2  # at 0 and at 25 (more than 10 s after it was opened)
    assert log == ["prepare", "close", "prepare"]
    assert seen == [opened[0]] * 3 + [opened[1]]
    archive.refresh()
    assert log[-1] == "close"
