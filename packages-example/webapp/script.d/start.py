#!/usr/bin/env python3
"""Starts the webapp service by the copkg start.py contract.

    start.py --runtime-dir=DIR --coordinate=SERVICE [--port=N] [--bind=ADDR]

Makes the runtime dir's subdirectories, starts lib/server.py detached (own
session, stdin /dev/null, output in console/), writes its pid to
run/start.pid, waits until it answers on its port, and exits."""

import argparse
import os
import socket
import subprocess
import sys
import time

SUBDIRS = ("log", "etc", "console", "data", "run")


def main() -> int:
    parser = argparse.ArgumentParser(prog="start.py")
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args()

    runtime = os.path.abspath(args.runtime_dir)
    for sub in SUBDIRS:
        os.makedirs(os.path.join(runtime, sub), exist_ok=True)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    with open(os.devnull, "rb") as devnull, \
            open(os.path.join(runtime, "console", "stdout.log"), "ab") as out, \
            open(os.path.join(runtime, "console", "stderr.log"), "ab") as err:
        server = subprocess.Popen(
            [sys.executable, os.path.join(package, "lib", "server.py"),
             "--port", str(args.port), "--bind", args.bind,
             "--coordinate", args.coordinate,
             "--log", os.path.join(runtime, "log", "access.log"),
             "--config", os.path.join(package, "etc", "webapp.conf")],
            stdin=devnull, stdout=out, stderr=err, cwd=runtime,
            start_new_session=True, close_fds=True)

    pidfile = os.path.join(runtime, "run", "start.pid")
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{server.pid}\n")
    os.chmod(pidfile + ".tmp", 0o644)
    os.replace(pidfile + ".tmp", pidfile)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            print(f"server exited with {server.returncode}", file=sys.stderr)
            return 1
        try:
            socket.create_connection((args.bind, args.port), timeout=0.5).close()
            print(f"{args.coordinate} listening on {args.bind}:{args.port}")
            return 0
        except OSError:
            time.sleep(0.005)
    print(f"server did not listen on {args.bind}:{args.port} within 10 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
