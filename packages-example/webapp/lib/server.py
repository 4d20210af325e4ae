"""The webapp example service: answers every GET with a greeting naming its
service coordinate, logs each request, and ends cleanly on SIGTERM."""

import argparse
import http.server
import signal
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()

    greeting = "hello"
    with open(args.config) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key == "greeting":
                greeting = value
    log = open(args.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{greeting} from {args.coordinate}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *fmt_args):
            log.write("%s %s\n" % (self.address_string(), fmt % fmt_args))

    server = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)

    def finish(signum, frame):
        log.write("stopping on signal %d\n" % signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, finish)
    print(f"serving {args.coordinate} on {args.bind}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
    sys.exit(0)
