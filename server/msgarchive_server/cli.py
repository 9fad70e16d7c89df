"""The `msgarchive` command: run the sidecar, or ask one whether it is healthy."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from msgarchive_server.config import DEFAULT_LISTEN, ConfigError, Settings, add_options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgarchive",
        description="Archive every campaign message to S3 before it is sent.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the sidecar",
        description="Run the archiving sidecar. Every setting also reads an environment "
        "variable; a flag wins over its variable.",
    )
    add_options(serve)
    check = commands.add_parser(
        "health", help="exit 0 when the sidecar at ADDR reports SERVING (for HEALTHCHECK)"
    )
    check.add_argument("--address", default=DEFAULT_LISTEN, metavar="ADDR")
    check.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "health":
            from msgarchive_server.healthcheck import check_health

            return check_health(args.address, args.timeout)
        return _serve(args)
    except ModuleNotFoundError as err:
        print(
            f"msgarchive: error: {err.name} is missing: install the sidecar with "
            "pip install 'msgarchive[server]'",
            file=sys.stderr,
        )
        return 2


def _serve(args: argparse.Namespace) -> int:
    from msgarchive_server.app import StartupError, serve
    from msgarchive_server.logs import configure_logging

    try:
        settings = Settings.load(args, os.environ)
        configure_logging(settings.log_level, settings.log_format)
        serve(settings)
    except (ConfigError, StartupError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
