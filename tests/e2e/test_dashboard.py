"""The Grafana dashboard and the Prometheus rules ask only for what the sidecar exports.

Their queries are compared with a real scrape of a running sidecar that has
archived on every channel, refused a message and served a read; the
recording rules they name must exist; and promtool parses every query.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from msgarchive import ArchiveClient, InvalidMessage
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.manifests.notes import COSIGNATURE_V1, vkey
from tests import samples
from tests.sidecar import SidecarProcess, manifest_key_pair

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana" / "msgarchive.json").read_text())
RULE_FILES = [DEPLOY / "prometheus" / name for name in ("rules.yaml", "alerts.yaml")]
RULES = [
    rule
    for path in RULE_FILES
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"]
]
RECORDED = {rule["record"] for rule in RULES if "record" in rule}
# Grafana's variables, as a query would see them once Grafana filled them in.
GRAFANA_VARIABLES = {"$job": "msgarchive", "$__rate_interval": "5m"}


def panel_queries() -> list[str]:
    queries = []
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            query = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                query = query.replace(variable, value)
            queries.append(query)
    return queries


def names_in(query: str) -> set[str]:
    """The metric and recording-rule names a query reads (labels and functions aside)."""
    without_matchers = re.sub(r"\{[^}]*\}", "", query)
    return set(re.findall(r"\b(msgarchive[a-zA-Z0-9_:]*|up)\b", without_matchers))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sample names a sidecar exports once it has done a bit of everything."""
    store = tmp_path_factory.mktemp("copies")
    keys_dir = tmp_path_factory.mktemp("keys")
    key_file, _ = manifest_key_pair(keys_dir)  # manifests on: the journal's metrics too
    sidecar = SidecarProcess(
        [
            "--listen=127.0.0.1:0",
            f"--store={store}",
            "--metrics-listen=127.0.0.1:0",
            f"--manifests-dir={keys_dir / 'journal'}",
            f"--manifest-signing-key={key_file}",
            # A witness on a port nothing listens on: its counts are exported at 0.
            f"--witness=http://127.0.0.1:9={vkey('witness.test/w', COSIGNATURE_V1, bytes(32))}",
            "--timestamp-url=http://127.0.0.1:9/",  # and a TSA likewise
        ]
    ).start()
    try:
        with ArchiveClient(sidecar.address) as client:
            keys = [client.archive(make()).key for make in samples.REQUESTS.values()]
            with pytest.raises(InvalidMessage):
                client.archive(pb.ArchiveRequest(sms=pb.SmsMessage(to="12")))
            client.get_archived_message(pb.GetArchivedMessageRequest(key=keys[0]))
        url = f"http://127.0.0.1:{sidecar.serving['metrics_port']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    finally:
        sidecar.stop()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("msgarchive")
    }


def test_every_panel_asks_for_exported_metrics_or_recorded_rules(exported: set[str]) -> None:
    queries = panel_queries()
    assert len(queries) >= 10
    for query in queries:
        names = names_in(query)
        assert names, f"no msgarchive metric in {query!r}"
        for name in names:
            if ":" in name:
                assert name in RECORDED, f"{name} is not a recording rule in deploy/prometheus"
            else:
                assert name in exported, f"{name} is not exported by the sidecar"


def test_every_rule_reads_exported_metrics(exported: set[str]) -> None:
    assert len(RULES) >= 8  # the alerts and recording rules are there to check
    assert len(exported) >= 10
    for rule in RULES:
        for name in names_in(rule["expr"]):
            if name == "up":  # Prometheus's own, per scrape target
                continue
            if ":" in name:
                assert name in RECORDED, f"{rule}: {name} is not recorded"
            else:
                assert name in exported, f"{rule}: {name} is not exported by the sidecar"


def test_the_dashboard_covers_what_operators_watch() -> None:
    queries = " ".join(panel_queries())
    for needed in (
        "msgarchive:archives:rate5m",  # archives/s by channel and outcome
        "msgarchive:archive_latency_seconds:p99_5m",
        "msgarchive:store_attempts:rate5m",
        "msgarchive_store_available",  # the circuit, by bucket
        "msgarchive_archives_in_flight",
        "msgarchive_reads_total",
        "msgarchive_archive_stored_bytes_sum",
    ):
        assert needed in queries


def test_promtool_parses_every_panel_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs it)")
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{n}", "expr": query}
                    for n, query in enumerate(panel_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
