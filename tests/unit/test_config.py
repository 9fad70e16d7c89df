"""Settings from flags and environment variables; bad ones name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgarchive_server.process.cli import main
from msgarchive_server.process.config import OPTIONS, ConfigError, Settings, parse_settings
from msgarchive_server.stores import Retention
from msgarchive_server.stores.location import DirectoryLocation, S3Location, parse_location


def test_zero_config_is_local_store_on_loopback() -> None:
    settings = parse_settings([], {})
    assert settings == Settings()
    assert settings.listen == "127.0.0.1:50051"
    assert parse_location(settings.store) == DirectoryLocation(Path("archive"))
    assert settings.max_message_bytes == 4 * 1024 * 1024


def test_flag_wins_over_environment() -> None:
    env = {"MSGARCHIVE_THREADS": "70", "MSGARCHIVE_S3_PATH_STYLE": "yes"}
    settings = parse_settings(["--threads", "80"], env)
    assert settings.threads == 80
    assert settings.s3_path_style is True


def test_every_option_has_flag_env_and_help() -> None:
    assert len(OPTIONS) >= 30  # the settings are there to check
    for option in OPTIONS:
        assert option.env == "MSGARCHIVE_" + option.name.upper()
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.help
        assert option.name in Settings.__dataclass_fields__


def test_each_default_is_a_value_its_own_flag_would_give() -> None:
    defaults = [o for o in OPTIONS if o.default is not None]
    assert len(defaults) >= 20
    for option in defaults:
        written = option.written_default
        assert written is not None
        assert option.parse(written) == option.default, option.flag
        assert type(option.parse(written)) is type(option.default), option.flag


def test_a_worker_is_told_its_index_by_a_setting() -> None:
    from msgarchive_server.process.workers import worker_argv

    supervisor = parse_settings(["--workers=2", "--listen=127.0.0.1:50999"], {})
    assert not supervisor.is_worker
    assert supervisor.first_worker
    argv = worker_argv(supervisor, 1)
    assert "--worker=1" in argv
    assert "--workers=1" in argv
    worker = parse_settings(argv, {})
    assert worker.is_worker
    assert not worker.first_worker
    assert worker.worker == 1
    first = parse_settings(worker_argv(supervisor, 0), {})
    assert (first.is_worker, first.first_worker) == (True, True)
    assert not [a for a in worker_argv(supervisor) if a.startswith("--worker=")]


@pytest.mark.parametrize(
    ("store", "where"),
    [
        ("s3://my-bucket", S3Location("my-bucket", "")),
        ("s3://my-bucket/tenant/a/", S3Location("my-bucket", "tenant/a/")),
        ("file:///var/lib/msgarchive", DirectoryLocation(Path("/var/lib/msgarchive"))),
        ("/data", DirectoryLocation(Path("/data"))),
    ],
)
def test_store_urls(store: str, where: object) -> None:
    assert parse_location(store) == where


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--store", "gs://bucket"], {}, "unknown store URL scheme 'gs'"),
        (["--store", "s3://"], {}, "missing bucket name"),
        (["--store", "s3://Bad_Bucket"], {}, "not a valid bucket name"),
        (["--threads", "many"], {}, "--threads='many': expected a number"),
        ([], {"MSGARCHIVE_MAX_MESSAGE_BYTES": "0"}, "MSGARCHIVE_MAX_MESSAGE_BYTES='0'"),
        (["--s3-sse", "rot13"], {}, "must be one of AES256, aws:kms"),
        (["--s3-sse-kms-key-id", "k1"], {}, "needs --s3-sse aws:kms"),
        (["--grace-period", "nan"], {}, "must be more than 0"),
        (["--s3-path-style", "maybe"], {}, "expected true or false"),
        (["--tls-cert", "c.pem"], {}, "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], {}, "--tls-client-ca (mTLS) needs --tls-cert"),
        (
            ["--max-in-flight", "60"],
            {},
            "--max-in-flight 60 plus --max-streams 8 must be below --threads 64",
        ),
        (["--metrics-listen", "9464"], {}, "--metrics-listen 9464: expected HOST:PORT"),
        (["--retention-mode", "GOVERNANCE"], {}, "--retention-mode and --retention-days go"),
        (["--retention-days", "30"], {}, "--retention-mode and --retention-days go"),
        (["--retention-mode", "LEGAL"], {}, "must be one of GOVERNANCE, COMPLIANCE"),
        ([], {"MSGARCHIVE_RETENTION_DAYS": "0"}, "MSGARCHIVE_RETENTION_DAYS='0': must be more"),
    ],
)
def test_bad_settings_are_one_clear_error(argv: list[str], env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(argv, env)
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_cli_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--store", "ftp://x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msgarchive: error: --store ftp://x: unknown store URL scheme")
    assert err.count("\n") == 1


def test_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert len(OPTIONS) >= 30
    for option in OPTIONS:
        assert option.flag in text
        assert option.env in text


def test_retention_is_read_from_flags_and_environment() -> None:
    settings = parse_settings(
        ["--retention-mode", "COMPLIANCE"], {"MSGARCHIVE_RETENTION_DAYS": "2557"}
    )
    assert settings.retention == Retention("COMPLIANCE", 2557)
    assert parse_settings([], {}).retention is None


@pytest.mark.usefixtures("restores_logging")
def test_a_local_store_with_retention_is_refused_at_startup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", f"--store={tmp_path}", "--retention-mode=GOVERNANCE", "--retention-days=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"msgarchive: error: store {tmp_path}: a local directory cannot enforce")
    assert err.count("\n") == 1
