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
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return 0
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
