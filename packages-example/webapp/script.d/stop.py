#!/usr/bin/env python3
"""Stops the webapp service: asks it to finish with SIGTERM and waits.

    stop.py --runtime-dir=DIR

copkg checks afterwards that the recorded processes are gone, and signals
whatever is left by its own schedule."""

import argparse
import os
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(prog="stop.py")
    parser.add_argument("--runtime-dir", required=True)
    args = parser.parse_args()
    try:
        with open(os.path.join(args.runtime_dir, "run", "start.pid")) as f:
            pids = [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(running(pid) for pid in pids):
            return 0
        time.sleep(0.01)
    return 0


def running(pid: int) -> bool:
    """Whether `pid` still runs. A process that has exited but is not yet
    reaped (a zombie: its parent, here init, has not waited for it) is
    done, though kill(pid, 0) still finds it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses.
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X", "")


if __name__ == "__main__":
    sys.exit(main())
