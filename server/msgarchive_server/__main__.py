"""`python -m msgarchive_server` is `msgarchive`."""

import sys

from msgarchive_server.process.cli import main

sys.exit(main())
