"""`python -m msgarchive_server` is `msgarchive`."""

from msgarchive_server.process.cli import run

run()
