#!/usr/bin/env python3
"""Peak RSS of `modelgate serve` under concurrent large unauthenticated bodies
(issue 15, item 5).

Starts a draining upstream and the real binary on 127.0.0.1, then sends
CLIENTS concurrent POSTs of MB megabytes of JSON to a route outside the
route table (`/api/v1/unlisted`), half with no credential and half with an
invalid session token, and reports the process's RSS before and its peak
(VmHWM) after.

    python3 load/unauth_bodies.py [--bin target/release/modelgate] [--clients 12] [--mb 60]
"""

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Drain(http.server.BaseHTTPRequestHandler):
    """Reads and discards the body, answers 200 {}."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        left = int(self.headers.get("content-length", "0"))
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post(addr, auth, size, results, i):
    chunk = b" " * (1 << 20)
    head = (
        "POST /api/v1/unlisted HTTP/1.1\r\nhost: x\r\n"
        "content-type: application/json\r\n"
        f"content-length: {size}\r\n{auth}\r\n"
    ).encode()
    try:
        s = socket.create_connection(addr, timeout=120)
        s.sendall(head)
        s.sendall(b'{"pad":"')
        sent = 8
        while sent < size - 2:
            n = min(len(chunk), size - 2 - sent)
            s.sendall(chunk[:n])
            sent += n
        s.sendall(b'"}')
        results[i] = s.recv(12).decode(errors="replace")
        s.close()
    except OSError as e:
        results[i] = f"error: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("MODELGATE_BIN", "target/release/modelgate"))
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--mb", type=int, default=60)
    args = ap.parse_args()

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drain)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()

    tmp = tempfile.mkdtemp(prefix="modelgate-rss-")
    config = os.path.join(tmp, "modelgate.toml")
    with open(config, "w") as f:
        f.write('[log]\nformat = "json"\n')
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MODELGATE_LISTEN": "127.0.0.1:0",
        "MODELGATE_ADMIN_LISTEN": "127.0.0.1:0",
        "MODELGATE_EGRESS_LISTEN": "127.0.0.1:0",
        "MODELGATE_UPSTREAM": f"http://127.0.0.1:{upstream.server_address[1]}",
        "MODELGATE_DATABASE": os.path.join(tmp, "webui.db"),
        "WEBUI_SECRET_KEY": "rss-test-key",
        "RUST_LOG": "warn,modelgate=info",
    }
    proc = subprocess.Popen(
        [args.bin, "serve", "--config", config],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    addr = None
    for line in proc.stderr:
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("message") == "proxy listening":
            host, port = v["addr"].rsplit(":", 1)
            addr = (host, int(port))
            break
    if addr is None:
        sys.exit("modelgate did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

    before = rss_kib(proc.pid, "VmRSS")
    size = args.mb * 1000 * 1000
    results = [None] * args.clients
    auths = ["", "authorization: Bearer not-a-valid-token\r\n"]
    threads = [
        threading.Thread(target=post, args=(addr, auths[i % 2], size, results, i))
        for i in range(args.clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    peak = rss_kib(proc.pid, "VmHWM")
    proc.terminate()
    proc.wait(timeout=60)
    upstream.shutdown()

    print(f"clients={args.clients} body={args.mb} MB each took={took:.1f}s")
    print(f"answers: {sorted(set(results))}")
    print(f"rss_before={before / 1024:.1f} MiB peak_rss={peak / 1024:.1f} MiB")
    if peak / 1024 >= 64:
        sys.exit("peak RSS is not under 64 MiB")


if __name__ == "__main__":
    main()
