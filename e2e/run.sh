#!/usr/bin/env bash
# End-to-end test of modelgate in front of a real Open WebUI (e2e/README.md).
#
#   e2e/run.sh [pytest args...]
#
# Installs what it needs (Open WebUI into a cached venv, Debian's chromium),
# builds modelgate unless MODELGATE_BIN is given, runs e2e/test_e2e.py, and
# stops every process it started, also on failure, timeout or Ctrl-C.
# Everything listens on 127.0.0.1 ports the OS hands out.
#
# Environment:
#   MODELGATE_BIN                  binary under test (default: cargo build, target/debug/modelgate)
#   MODELGATE_E2E_VENV             venv with open-webui + pytest (default ~/.cache/modelgate-e2e/venv)
#   MODELGATE_E2E_OPEN_WEBUI       open-webui version (default 0.12.4)
#   MODELGATE_E2E_FULL_INSTALL     1: plain `pip install open-webui` (7.3 GB with torch/CUDA);
#                                  default: without the lazily imported local-ML stack (1.9 GB)
#   MODELGATE_E2E_PYTHON           interpreter for the venv (default python3; open-webui needs 3.11/3.12)
#   MODELGATE_E2E_OUT              artifacts: logs, screenshot.png, timings (default target/e2e)
#   MODELGATE_E2E_TIMEOUT          seconds for the whole pytest run (default 900)
#   MODELGATE_E2E_STARTUP          seconds Open WebUI may take to come up (default 120)
#   MODELGATE_E2E_REQUIRE_BROWSER  1 (default): no chromium is a failure; 0: skip the screenshot
#   MODELGATE_E2E_KEEP             1: keep the temporary DATA_DIR (webui.db) for inspection
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

OWUI_VERSION=${MODELGATE_E2E_OPEN_WEBUI:-0.12.4}
VENV=${MODELGATE_E2E_VENV:-${HOME:-/root}/.cache/modelgate-e2e/venv}
PY=${MODELGATE_E2E_PYTHON:-python3}
OUT=${MODELGATE_E2E_OUT:-$ROOT/target/e2e}
TIMEOUT=${MODELGATE_E2E_TIMEOUT:-900}
PIDDIR=$OUT/pids

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$OUT/logs"
rm -rf "$PIDDIR"
mkdir -p "$PIDDIR"
TIMINGS=$OUT/timings.txt
: >"$TIMINGS"

PYTEST_PID=
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $PYTEST_PID ]] && kill -0 "$PYTEST_PID" 2>/dev/null; then
    kill -TERM "$PYTEST_PID" 2>/dev/null || true
  fi
  # Process groups the test started (pid files written by e2e/conftest.py),
  # left behind only if pytest was killed before its fixtures stopped them.
  local f pid
  for f in "$PIDDIR"/*; do
    [[ -e $f ]] || continue
    pid=$(<"$f")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping leftover ${f##*/}"
      kill -TERM -- "-$pid" 2>/dev/null || true
      sleep 2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- chromium (Debian) --------------------------------------------------------
if [[ -z ${CHROMIUM:-} ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ ${MODELGATE_E2E_REQUIRE_BROWSER:-1} == 1 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      log "installing chromium (apt-get)"
      t=$SECONDS
      DEBIAN_FRONTEND=noninteractive apt-get update -q >"$OUT/logs/apt.log" 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation \
        >>"$OUT/logs/apt.log" 2>&1 || { tail -20 "$OUT/logs/apt.log" >&2; exit 1; }
      echo "chromium_install_s=$((SECONDS - t))" >>"$TIMINGS"
    else
      log "chromium missing and cannot apt-get install it (set MODELGATE_E2E_REQUIRE_BROWSER=0 to skip)"
      exit 1
    fi
  fi
fi

# --- Open WebUI + test tools in a cached venv ---------------------------------
venv_ok() {
  [[ -x $VENV/bin/python ]] && [[ -x $VENV/bin/open-webui ]] &&
    "$VENV/bin/python" - "$OWUI_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("open-webui") == sys.argv[1], version("open-webui")
import pytest, requests, websocket  # noqa: F401
EOF
}

if venv_ok; then
  log "open-webui $OWUI_VERSION already installed in $VENV"
  echo "venv_install_s=0 (cached)" >>"$TIMINGS"
else
  t=$SECONDS
  mkdir -p "$(dirname "$VENV")"
  [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
  pipi() {
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" >>"$OUT/logs/pip.log" 2>&1 ||
      { tail -30 "$OUT/logs/pip.log" >&2; exit 1; }
  }
  : >"$OUT/logs/pip.log"
  tools=("pytest>=8,<10" "requests>=2.31" "websocket-client>=1.7")
  if [[ ${MODELGATE_E2E_FULL_INSTALL:-0} == 1 ]]; then
    log "installing open-webui==$OWUI_VERSION into $VENV (full, ~7 GB with torch/CUDA; minutes)"
    pipi "open-webui==$OWUI_VERSION" "${tools[@]}"
  else
    # Everything open-webui declares except the lazily imported local-ML
    # stack (e2e/owui_requirements.py): 1.9 GB instead of 7.3 GB.
    log "installing open-webui==$OWUI_VERSION into $VENV (slim, ~1.9 GB; MODELGATE_E2E_FULL_INSTALL=1 for all)"
    pipi --no-deps "open-webui==$OWUI_VERSION"
    "$VENV/bin/python" e2e/owui_requirements.py >"$OUT/open-webui-requirements.txt"
    pipi -r "$OUT/open-webui-requirements.txt" "${tools[@]}"
  fi
  venv_ok || { log "open-webui install did not produce a working venv"; exit 1; }
  echo "venv_install_s=$((SECONDS - t))" >>"$TIMINGS"
  echo "venv_size=$(du -sh "$VENV" | cut -f1)" >>"$TIMINGS"
fi

# --- modelgate ----------------------------------------------------------------
if [[ -z ${MODELGATE_BIN:-} ]]; then
  log "cargo build -p modelgate"
  t=$SECONDS
  cargo build --locked -q -p modelgate
  echo "cargo_build_s=$((SECONDS - t))" >>"$TIMINGS"
  MODELGATE_BIN=$ROOT/target/debug/modelgate
fi
export MODELGATE_BIN
"$MODELGATE_BIN" --version >/dev/null

# --- the test -----------------------------------------------------------------
export MODELGATE_E2E_OUT=$OUT MODELGATE_E2E_PIDDIR=$PIDDIR
export OPEN_WEBUI_BIN=$VENV/bin/open-webui
export PYTHONDONTWRITEBYTECODE=1
log "pytest e2e (timeout ${TIMEOUT}s)"
t=$SECONDS
set +e
timeout --kill-after=30 "$TIMEOUT" \
  "$VENV/bin/python" -m pytest e2e -p no:cacheprovider -ra -v --junitxml="$OUT/junit.xml" "$@" &
PYTEST_PID=$!
wait "$PYTEST_PID"
rc=$?
PYTEST_PID=
set -e
echo "pytest_s=$((SECONDS - t))" >>"$TIMINGS"
if [[ -f $OUT/timings.json ]]; then
  echo "from the test: $(tr -d '\n ' <"$OUT/timings.json")" >>"$TIMINGS"
fi
log "timings:"
sed 's/^/  /' "$TIMINGS" >&2
case $rc in
  0) log "passed; screenshot: $OUT/screenshot.png" ;;
  5) log "pytest collected no tests: failing"; rc=1 ;;
  124 | 137) log "timed out after ${TIMEOUT}s"; rc=1 ;;
  *) log "failed (pytest exit $rc); logs in $OUT/logs" ;;
esac
exit "$rc"
