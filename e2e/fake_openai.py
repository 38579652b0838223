#!/usr/bin/env python3
"""A small fake OpenAI-compatible server for the end-to-end test (stdlib only).

Open WebUI is pointed at it with OPENAI_API_BASE_URL=http://127.0.0.1:PORT/v1.

- GET  /v1/models              three models (MODELS below)
- POST /v1/chat/completions    non-streaming JSON, or SSE when "stream": true
                               (STREAM_CHUNKS chunks, CHUNK_DELAY s apart, so
                               a client can tell a stream from a buffered reply)
- GET  /_calls                 every call received so far, oldest first:
                               [{"path", "model", "models", "stream", "text", "at"}]
                               (models = OpenRouter's fallback list, text = all
                               message contents joined), so the test can prove
                               a refused call never got here
- POST /_reset                 forget the recorded calls

It binds 127.0.0.1 on a port the OS picks, prints "PORT <n>" on stdout (one
line, flushed), and exits by itself after --max-seconds.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = ["gpt-alpha", "gpt-beta", "gpt-gamma"]
STREAM_CHUNKS = 6
CHUNK_DELAY = 0.25

CALLS = []
CALLS_LOCK = threading.Lock()


def message_text(body):
    parts = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for c in content:
                if isinstance(c, dict) and isinstance(c.get("text"), str):
                    parts.append(c["text"])
    return "\n".join(parts)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # one line per request on stderr
        sys.stderr.write("fake-openai: %s\n" % (fmt % args))

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self):
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self):
        path = self._path()
        if path in ("/v1/models", "/models"):
            now = int(time.time())
            self._json(200, {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": now, "owned_by": "fake"} for m in MODELS],
            })
        elif path == "/_calls":
            with CALLS_LOCK:
                self._json(200, list(CALLS))
        elif path in ("", "/", "/health"):
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": {"message": "not found: " + path}})

    def do_POST(self):
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == "/_reset":
            with CALLS_LOCK:
                CALLS.clear()
            self._json(200, {"ok": True})
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._json(404, {"error": {"message": "not found: " + path}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "bad json"}})
            return
        model = body.get("model")
        stream = bool(body.get("stream"))
        text = message_text(body)
        with CALLS_LOCK:
            CALLS.append({"path": path, "model": model, "models": body.get("models"), "stream": stream,
                          "text": text, "at": time.time()})
        if model not in MODELS:
            self._json(404, {"error": {"message": "model not found: %s" % model, "code": "model_not_found"}})
            return
        reply = "Hello from %s." % model
        created = int(time.time())
        cid = "chatcmpl-fake-%d" % len(CALLS)
        if not stream:
            self._json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": STREAM_CHUNKS, "total_tokens": 5 + STREAM_CHUNKS},
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        words = ["chunk%d " % i for i in range(STREAM_CHUNKS)]
        try:
            for i, w in enumerate(words):
                delta = {"content": w} if i else {"role": "assistant", "content": w}
                chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(CHUNK_DELAY)
            end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(b"data: " + json.dumps(end).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-seconds", type=float, default=1800.0,
                    help="exit after this long, whatever happens (default 1800)")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    timer = threading.Timer(args.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
