#!/usr/bin/env python3
"""Every shell command the project's docs show is accounted for, so the docs
cannot drift from what works:

- "run": executed here, against the real binary (the ops CLI on the demo's
  database; the management API's curl examples against `serve` on that
  database, failing on an error status; the README's first command started
  and probed);
- "ci": run by a step of .ci/run, whose text must contain the given string;
- "manual": cannot run on a CI machine (a Docker engine, an editor, a long
  benchmark), with the reason.

A command in a ```sh block of README.md, docs/*.md, fuzz/README.md or
load/README.md that no rule below matches fails the check: add a rule (and
make it run if at all possible) when you add a command to the docs.

    .ci/doc-commands.py target/debug/modelgate [--skip-release]
"""

import glob
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(glob.glob("docs/*.md", root_dir=ROOT)), "fuzz/README.md", "load/README.md"]


def commands():
    """(doc, command) for every command line of every sh block, with
    backslash continuations joined and trailing comments dropped."""
    for doc in DOCS:
        path = ROOT / doc
        if not path.exists():
            continue
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", path.read_text(), re.S):
            pending = ""
            for line in block.splitlines():
                line = pending + line
                if line.rstrip().endswith("\\"):
                    pending = line.rstrip()[:-1] + " "
                    continue
                pending = ""
                code = re.sub(r"\s+#\s.*$", "", line).strip()
                if code and not code.startswith("#"):
                    yield doc, re.sub(r"\s+", " ", code)


class Demo:
    """`modelgate demo`: a database with Open WebUI's tables, users and
    organizations, for the ops commands."""

    def __init__(self, binary):
        self.p = subprocess.Popen([binary, "demo"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        self.db = None
        deadline = time.monotonic() + 60
        while self.db is None and time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            m = re.match(r"modelgate --db (\S+) ", line)
            if m:
                self.db = m.group(1)
        if not self.db:
            raise SystemExit("doc-commands: `modelgate demo` did not print its database")
        with sqlite3.connect(self.db) as conn:
            self.user_id = conn.execute("SELECT id FROM user ORDER BY id LIMIT 1").fetchone()[0]

    def stop(self):
        os.killpg(self.p.pid, signal.SIGTERM)
        self.p.wait(30)


class AdminApi:
    """`modelgate serve` on the demo's database with an admin token, for the
    management API's curl examples (started at the first one)."""

    def __init__(self, binary, db, env):
        self.token = secrets.token_hex(16)
        env = {**env, "MODELGATE_DATABASE": db, "MODELGATE_ADMIN_TOKEN": self.token,
               "MODELGATE_LISTEN": "127.0.0.1:0", "MODELGATE_ADMIN_LISTEN": "127.0.0.1:0",
               "MODELGATE_EGRESS_LISTEN": "127.0.0.1:0", "RUST_LOG": "info"}
        self.p = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        self.addr = None
        deadline = time.monotonic() + 60
        while self.addr is None and time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                raise AssertionError(f"serve exited {self.p.wait()} before listening")
            m = re.search(r"admin listening.*?addr[\"=: ]+\"?(127\.0\.0\.1:\d+)", line)
            if m:
                self.addr = m.group(1)
        if self.addr is None:
            raise AssertionError("no `admin listening` line")
        # Keep reading its log so a full pipe never blocks it.
        threading.Thread(target=lambda: self.p.stderr.read(), daemon=True).start()

    def stop(self):
        os.killpg(self.p.pid, signal.SIGTERM)
        self.p.wait(60)


def run(cmd, env=None, cwd=ROOT):
    r = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                       executable="/bin/bash")
    if r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def serve_answers(cmd, env, cwd=ROOT):
    """Starts a `serve` command line on ports the OS picks, waits for its
    admin listener, checks /health and /health/ready answer, stops it."""
    env = {**env, "MODELGATE_LISTEN": "127.0.0.1:0", "MODELGATE_ADMIN_LISTEN": "127.0.0.1:0",
           "MODELGATE_EGRESS_LISTEN": "127.0.0.1:0", "RUST_LOG": "info"}
    p = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, executable="/bin/bash")
    try:
        deadline = time.monotonic() + 900  # a cold `cargo run --release` builds first
        admin = None
        while admin is None and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                raise AssertionError(f"exited {p.wait()} before listening")
            m = re.search(r"admin listening.*?addr[\"=: ]+\"?(127\.0\.0\.1:\d+)", line)
            if m:
                admin = m.group(1)
        if admin is None:
            raise AssertionError("no `admin listening` line")
        with urllib.request.urlopen(f"http://{admin}/health", timeout=10) as r:
            assert r.status == 200, r.status
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(60)


def main():
    binary = str(Path(sys.argv[1]).resolve())
    skip_release = "--skip-release" in sys.argv
    ci_text = (ROOT / ".ci" / "run").read_text()
    bindir = str(Path(binary).parent)
    demo = Demo(binary)
    tmp = Path(tempfile.mkdtemp(prefix="modelgate-doc-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    cli_env = {**base_env, "PATH": f"{bindir}:{base_env['PATH']}", "MODELGATE_DATABASE": demo.db,
               "OPENROUTER_EXTERNAL_USER": "mai_client_docs", "ORGANIZATION_NAME": "Docs Org"}

    def mg(cmd):
        args = cmd[len("mg "):].replace("<user-id>", demo.user_id)
        return run(f"{binary} --db {demo.db} {args}", env=cli_env)

    def in_container(cmd):
        inner = re.match(r"docker compose exec modelgate (sh -c '.*')$", cmd).group(1)
        return run(inner, env=cli_env)

    # The deployment's directory: a copy of what the commands there use.
    for name in (".env.example", "docker-compose.yml"):
        (tmp / name).write_text((ROOT / name).read_text())

    def copy_env(cmd):
        # The editor is the operator's part.
        return run(cmd.replace(" && $EDITOR .env", ""), cwd=tmp, env=base_env)

    def readme_serve(cmd):
        if skip_release:
            return "skipped (--skip-release)"
        return serve_answers(cmd, {**base_env, "MODELGATE_DATABASE": str(tmp / "data" / "webui.db")})

    def deployment_serve(cmd):
        cmd = cmd.replace("/app/backend/data/webui.db", demo.db)
        if skip_release:
            cmd = cmd.replace("target/release/modelgate", binary)
        return serve_answers(cmd, base_env)

    def release_build(cmd):
        return "skipped (--skip-release)" if skip_release else run(cmd, env=base_env)

    def in_ci(text):
        def check(_cmd):
            if text not in ci_text:
                raise AssertionError(f".ci/run does not run {text!r}")
        return check

    groups = []

    def policy_example(cmd):
        # The README's policy walk-through binds an Open WebUI group; the
        # demo has users, not groups, so one is made as Open WebUI would.
        if not groups:
            with sqlite3.connect(demo.db) as conn:
                conn.execute("INSERT INTO \"group\" (id, user_id, name, description, created_at, updated_at) "
                             "VALUES ('grp-docs', 'admin', 'engineering', '', 0, 0)")
                conn.execute("INSERT INTO group_member (id, group_id, user_id) "
                             "SELECT 'gm-docs', 'grp-docs', id FROM user WHERE email = 'alice@acme.test'")
            groups.append("engineering")
        return run(f"{binary} --db {demo.db} {cmd[len('modelgate '):]}", env=cli_env)

    admin_api = []

    def api_curl(cmd):
        # The documented address and user placeholder, made real; a 4xx/5xx
        # fails the check.
        if not admin_api:
            admin_api.append(AdminApi(binary, demo.db, base_env))
        api = admin_api[0]
        cmd = cmd.replace("http://127.0.0.1:9464", f"http://{api.addr}").replace("<user-id>", demo.user_id)
        cmd = cmd.replace("curl -s ", "curl -s --fail-with-body ", 1)
        return run(cmd, env={**base_env, "MODELGATE_ADMIN_TOKEN": api.token})

    def manual(reason):
        return lambda _cmd: f"manual: {reason}"

    no_engine = manual("needs a Docker engine; CI validates the compose file (docker-compose config -q)")
    rules = [
        (r"cargo run --release -- serve", readme_serve),
        (r"cargo test --workspace", in_ci("cargo test --workspace")),
        (r"cp \.env\.example \.env( && \$EDITOR \.env)?", copy_env),
        (r"chmod 600 \.env", lambda c: run(c, cwd=tmp, env=base_env)),
        (r"docker compose (up -d --build|ps)", no_engine),
        (r"mg\(\) \{ docker compose exec modelgate modelgate \"\$@\"; \}", lambda c: "defines mg (below)"),
        (r"mg .*", mg),
        (r"modelgate (org|model|member|access) .*", policy_example),
        (r"docker compose exec modelgate modelgate .*", lambda c: mg("mg " + c.split(" modelgate modelgate ", 1)[1])),
        (r"docker compose exec modelgate sh -c '.*'", in_container),
        (r"curl -s .*http://127\.0\.0\.1:9464/api/v1/.*", api_curl),
        (r"curl -s http://127\.0\.0\.1:9464/metrics \| promtool check metrics", in_ci("check-metrics.sh")),
        (r"cargo build --release -p modelgate", release_build),
        (r"MODELGATE_DATABASE=.* target/release/modelgate serve --config config/modelgate\.toml", deployment_serve),
        (r"cargo install cargo-fuzz( --locked)?", in_ci("cargo install cargo-fuzz --locked")),
        (r"(FUZZ_SECONDS=\d+ )?fuzz/run\.sh( \w+)*", in_ci("fuzz/run.sh")),
        (r"cargo \+nightly fuzz run \w+ -- -max_total_time=\d+", in_ci("fuzz/run.sh")),
        (r"cargo \+nightly fuzz run \w+ fuzz/artifacts/\S+",
         manual("replays a crash a fuzz run found; CI fails on any crash and prints its path")),
        (r"(DURATION=\d+ USERS=\d+ )?load/run\.sh",
         manual("a benchmark of minutes; its figures are in README.md with this command")),
        (r"(LITELLM=1 )?load/parity\.sh",
         manual("a benchmark of minutes against nginx (and LiteLLM); its figures are in README.md")),
    ]
    failures, report = [], []
    try:
        for doc, cmd in commands():
            for pattern, handler in rules:
                if re.fullmatch(pattern, cmd):
                    try:
                        result = handler(cmd)
                        note = result if isinstance(result, str) and result.startswith(("manual", "skipped", "defines")) else "ok"
                        report.append(f"{note:>8.8}  {doc}: {cmd}")
                    except Exception as e:  # noqa: BLE001 - reported below
                        failures.append(f"{doc}: {cmd}\n    {e}")
                    break
            else:
                failures.append(f"{doc}: {cmd}\n    no rule in .ci/doc-commands.py accounts for this command")
    finally:
        for api in admin_api:
            api.stop()
        demo.stop()
    print("\n".join(report))
    if failures:
        print("\ndoc-commands: FAILED\n" + "\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"doc-commands: {len(report)} documented commands accounted for")


if __name__ == "__main__":
    main()
