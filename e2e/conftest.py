"""The stack for the end-to-end test: a fake OpenAI server, a real Open WebUI
(pip package, 0.12.x) and `modelgate serve`, all on 127.0.0.1 ports the OS
hands out, each process in its own session so it can be stopped as a group.

Environment (e2e/run.sh sets them):
  MODELGATE_BIN           the modelgate binary (default target/debug/modelgate)
  OPEN_WEBUI_BIN          the `open-webui` launcher (default: on PATH)
  MODELGATE_E2E_OUT       artifacts: logs, screenshot (default target/e2e)
  MODELGATE_E2E_STARTUP   seconds Open WebUI may take to answer /health (120)
  CHROMIUM                headless browser for the screenshot (default: PATH)
"""

import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = Path(os.environ.get("MODELGATE_E2E_OUT") or ROOT / "target" / "e2e").resolve()
LOGS = OUT / "logs"
STARTUP_SECS = float(os.environ.get("MODELGATE_E2E_STARTUP") or 120)

# Organizations and models (the fake serves gpt-alpha, gpt-beta, gpt-gamma).
# gpt-gamma is enabled for no organization: no call for it may ever reach
# the fake upstream.
ORG_A, ORG_B = "e2e-org-a", "e2e-org-b"
MODELS_A, MODELS_B = ["gpt-alpha"], ["gpt-beta"]
ALL_MODELS = {"gpt-alpha", "gpt-beta", "gpt-gamma"}
PASSWORD = "E2e-Passw0rd!" + secrets.token_hex(4)


def free_port():
    """A port the OS considers free right now (bind :0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class Proc:
    """A child process in its own session, logging to LOGS/<name>.log."""

    def __init__(self, name, argv, env=None, cwd=None, stdout_pipe=False):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = LOGS / f"{name}.log"
        self._logf = open(self.log, "ab")
        self.p = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._logf,
            stderr=self._logf,
            start_new_session=True,
        )
        # e2e/run.sh kills these process groups if pytest itself is killed
        # (its timeout) before the fixtures could stop them.
        self._pidfile = None
        piddir = os.environ.get("MODELGATE_E2E_PIDDIR")
        if piddir:
            Path(piddir).mkdir(parents=True, exist_ok=True)
            self._pidfile = Path(piddir) / f"{name}.{self.p.pid}"
            self._pidfile.write_text(str(self.p.pid))

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=10.0):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        self._logf.close()
        if self._pidfile:
            self._pidfile.unlink(missing_ok=True)

    def failure(self, what):
        return f"{what}; {self.name} exit={self.p.poll()}; log {self.log}:\n{log_tail(self.log)}"


def wait_http(url, proc, timeout, ok=lambda r: r.status_code == 200):
    """Polls url until ok(response), the process dies, or timeout passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            pytest.fail(proc.failure(f"{proc.name} exited while waiting for {url}"))
        try:
            r = requests.get(url, timeout=2)
            if ok(r):
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.25)
    pytest.fail(proc.failure(f"{url} not ready after {timeout:.0f}s (last: {last})"))


@dataclass
class User:
    email: str
    id: str
    token: str
    role: str

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Stack:
    fake_url: str
    webui_url: str
    data_dir: Path
    db: Path
    secret: str
    admin: User
    user_a: User
    user_b: User
    # Open WebUI's OPENAI_API_BASE_URL: modelgate's egress listener, which
    # the `gate` fixture starts (Open WebUI needs no model until then).
    egress_addr: str
    forward_secret: str
    timings: dict = field(default_factory=dict)
    procs: list = field(default_factory=list)

    def fake_calls(self):
        return requests.get(f"{self.fake_url}/_calls", timeout=5).json()


@dataclass
class Gate:
    url: str
    admin_url: str
    admin_addr: str
    proc: Proc


@dataclass
class OrgSetup:
    ok: bool
    error: str = ""
    commands: list = field(default_factory=list)


def modelgate_bin():
    b = os.environ.get("MODELGATE_BIN") or str(ROOT / "target" / "debug" / "modelgate")
    b = str(Path(b).resolve()) if os.sep in b else (shutil.which(b) or b)
    if not Path(b).exists():
        pytest.fail(f"modelgate binary not found at {b}; build it (cargo build) or set MODELGATE_BIN")
    return b


def run_modelgate(db, *args, timeout=60, check=True):
    """One ops CLI command on the shared database; returns CompletedProcess."""
    argv = [modelgate_bin(), "--db", str(db), *args]
    env = dict(os.environ)
    env.pop("MODELGATE_DATABASE", None)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    with open(LOGS / "modelgate-cli.log", "a") as f:
        f.write(f"$ {' '.join(argv)}\nexit {r.returncode}\n{r.stdout}{r.stderr}\n")
    if check and r.returncode != 0:
        raise RuntimeError(f"`modelgate {' '.join(args)}` exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _signup_admin(base):
    r = requests.post(f"{base}/api/v1/auths/signup",
                      json={"name": "E2E Admin", "email": "admin@e2e.test", "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, f"admin signup: {r.status_code} {r.text[:300]}"
    j = r.json()
    assert j.get("role") == "admin", f"first signup should be admin: {j}"
    return User("admin@e2e.test", j["id"], j["token"], j["role"])


def _add_user(base, admin, name, email):
    r = requests.post(f"{base}/api/v1/auths/add", headers=admin.auth(),
                      json={"name": name, "email": email, "password": PASSWORD, "role": "user"}, timeout=30)
    assert r.status_code == 200, f"add {email}: {r.status_code} {r.text[:300]}"
    uid = r.json()["id"]
    r = requests.post(f"{base}/api/v1/auths/signin", json={"email": email, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, f"signin {email}: {r.status_code} {r.text[:300]}"
    j = r.json()
    assert j["id"] == uid and j["role"] == "user", j
    return User(email, uid, j["token"], j["role"])


@pytest.fixture(scope="session")
def stack():
    """Fake OpenAI + real Open WebUI with an admin and two users."""
    procs = []
    timings = {}
    tmp = Path(tempfile.mkdtemp(prefix="modelgate-e2e-"))
    try:
        fake = Proc("fake-openai", [sys.executable, str(HERE / "fake_openai.py"), "--max-seconds", "1800"],
                    stdout_pipe=True)
        procs.append(fake)
        ready, _, _ = select.select([fake.p.stdout], [], [], 10)
        line = fake.p.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            pytest.fail(fake.failure(f"fake OpenAI server did not report its port (got {line!r})"))
        fake_url = f"http://127.0.0.1:{int(line.split()[1])}"

        data_dir = tmp / "data"
        data_dir.mkdir()
        secret = secrets.token_hex(32)
        forward_secret = secrets.token_hex(32)
        egress_addr = f"127.0.0.1:{free_port()}"
        port = free_port()
        webui_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("MODELGATE_", "OPENAI_", "OLLAMA_", "WEBUI_")):
                env.pop(k)
        env.update({
            "DATA_DIR": str(data_dir),
            "WEBUI_SECRET_KEY": secret,
            "OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "ENABLE_OLLAMA_API": "false",
            "RAG_EMBEDDING_ENGINE": "openai",
            "BYPASS_MODEL_ACCESS_CONTROL": "true",
            "DEFAULT_USER_ROLE": "user",
            # Every outbound model call goes through modelgate's egress,
            # signed with the user it is made for.
            "OPENAI_API_BASE_URL": f"http://{egress_addr}",
            "ENABLE_FORWARD_USER_INFO_HEADERS": "true",
            "FORWARD_USER_INFO_HEADER_JWT_SECRET": forward_secret,
            "USER_PERMISSIONS_FEATURES_AUTOMATIONS": "true",
            "ENABLE_CHANNELS": "true",
            "OPENAI_API_KEY": "x",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "ENABLE_OPENAI_API_PASSTHROUGH": "false",
            "GLOBAL_LOG_LEVEL": os.environ.get("MODELGATE_E2E_WEBUI_LOG", "WARNING"),
            "SCARF_NO_ANALYTICS": "true",
            "DO_NOT_TRACK": "true",
            "ANONYMIZED_TELEMETRY": "false",
        })
        webui_bin = os.environ.get("OPEN_WEBUI_BIN") or shutil.which("open-webui") or "open-webui"
        t0 = time.monotonic()
        webui = Proc("open-webui", [webui_bin, "serve", "--host", "127.0.0.1", "--port", str(port)],
                     env=env, cwd=str(tmp))
        procs.append(webui)
        wait_http(f"{webui_url}/health", webui, STARTUP_SECS)
        timings["open_webui_startup_s"] = round(time.monotonic() - t0, 1)

        admin = _signup_admin(webui_url)
        user_a = _add_user(webui_url, admin, "User A", "user.a@e2e.test")
        user_b = _add_user(webui_url, admin, "User B", "user.b@e2e.test")
        db = data_dir / "webui.db"
        assert db.exists(), f"Open WebUI did not create {db}"
        st = Stack(fake_url, webui_url, data_dir, db, secret, admin, user_a, user_b,
                   egress_addr, forward_secret, timings, procs)
        yield st
    finally:
        for p in reversed(procs):
            p.stop()
        if os.environ.get("MODELGATE_E2E_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        (OUT / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")


@pytest.fixture(scope="session")
def org_attempt(stack):
    """Puts user A in ORG_A and user B in ORG_B through the ops CLI.

    Never raises: the result is recorded, so tests that do not depend on the
    organizations still run when the CLI is missing a command."""
    cmds = [["init"]]
    for org, name, user, models in ((ORG_A, "E2E Org A", stack.user_a, MODELS_A),
                                    (ORG_B, "E2E Org B", stack.user_b, MODELS_B)):
        cmds.append(["org", "create", org, "--name", name])
        cmds.append(["member", "add", org, user.id])
        # --force: the gate has not run yet, so it has seen no model list.
        cmds.extend(["model", "enable", org, m, "--force"] for m in models)
    setup = OrgSetup(ok=True, commands=cmds)
    for c in cmds:
        try:
            run_modelgate(stack.db, *c)
        except Exception as e:  # noqa: BLE001 - recorded and re-raised by `orgs`
            setup.ok, setup.error = False, str(e)
            break
    return setup


@pytest.fixture(scope="session")
def orgs(org_attempt):
    if not org_attempt.ok:
        pytest.fail(f"organization set-up through the modelgate CLI failed: {org_attempt.error}")
    return org_attempt


@pytest.fixture(scope="session")
def gate(stack, org_attempt):
    """`modelgate serve` in front of Open WebUI."""
    port, admin_port = free_port(), free_port()
    admin_addr = f"127.0.0.1:{admin_port}"
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MODELGATE_") and k != "MODELGATE_BIN":
            env.pop(k)
    env.update({
        "MODELGATE_LISTEN": f"127.0.0.1:{port}",
        "MODELGATE_ADMIN_LISTEN": admin_addr,
        "MODELGATE_UPSTREAM": stack.webui_url,
        "MODELGATE_EGRESS_LISTEN": stack.egress_addr,
        "MODELGATE_EGRESS_UPSTREAM": f"{stack.fake_url}/v1",
        "FORWARD_USER_INFO_HEADER_JWT_SECRET": stack.forward_secret,
        "MODELGATE_DATABASE": str(stack.db),
        "MODELGATE_CONFIG": str(ROOT / "config" / "modelgate.toml"),
        "WEBUI_SECRET_KEY": stack.secret,
        "RUST_LOG": os.environ.get("MODELGATE_E2E_LOG", "info"),
    })
    proc = Proc("modelgate", [modelgate_bin(), "serve"], env=env, cwd=str(ROOT))
    stack.procs.append(proc)
    g = Gate(f"http://127.0.0.1:{port}", f"http://{admin_addr}", admin_addr, proc)
    wait_http(f"{g.admin_url}/health", proc, 30)
    wait_http(f"{g.url}/health", proc, 30)
    return g


def pytest_sessionfinish(session, exitstatus):
    # Pytest's "no tests ran" (5) must not look like success to CI.
    if exitstatus == 5:
        session.exitstatus = 1
