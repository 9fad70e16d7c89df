"""Run a command and report its peak RSS truly: `python -m bench.maxrss CMD...`.

Linux records in a process's `ru_maxrss` the high-water mark of the memory it
had before `exec` too: a child forked from a large parent (the benchmark,
holding a million rows) reports the parent's size. This launcher is small
when it starts the command, so the command's own peak is what it reports, as
its last line on stderr: `maxrss_bytes=N`. The command's exit code is its own.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> int:
    child = subprocess.Popen(sys.argv[1:])  # noqa: S603 (the caller's command)
    _, status, usage = os.wait4(child.pid, 0)
    print(f"maxrss_bytes={usage.ru_maxrss * 1024}", file=sys.stderr, flush=True)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    raise SystemExit(main())
