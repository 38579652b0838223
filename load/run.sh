#!/usr/bin/env bash
# One command for the load test: build release binaries, create the access
# database, start the mock upstream, nginx (plain pass-through) and
# modelgate on free loopback ports, run the same load against all three
# (closed loop to saturation, then open loop at ~50% of modelgate's
# saturation throughput), and write load/results/latest.{json,md} and
# load/results/latency.svg.
#
# Knobs (environment): DURATION (s, default 15), WARMUP (s, 3), USERS (300),
# MODELS (300), TOKENS (20), TOKEN_DELAY_MS (0), THINK_MS (0), HALF (1 = run
# the half-load phase), SKIP_BUILD (1 = use existing release binaries),
# KEEP_TMP (1 = keep the temp dir with logs), OUT (results dir),
# MODELGATE_BIN and MODELGATE_CONFIG (another build or config to measure).
#
# Exit code: 0 when every run was clean; 2 when a run reported security
# errors (e.g. modelgate served a forbidden model); 1 on other failures.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
USERS=${USERS:-300}
MODELS=${MODELS:-300}
TOKENS=${TOKENS:-20}
TOKEN_DELAY_MS=${TOKEN_DELAY_MS:-0}
THINK_MS=${THINK_MS:-0}
HALF=${HALF:-1}
OUT=${OUT:-$ROOT/load/results}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

# 300 users through a proxy hold ~600 sockets per process; the open loop
# may hold more. Raise the soft limit where allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d "${TMPDIR:-/tmp}/modelgate-load.XXXXXX")
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "run.sh: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run.sh: $*" >&2; }

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --workspace)
fi
for b in modelgate mock-upstream loadgen; do
    [[ -x $BIN/$b ]] || { log "missing $BIN/$b (build first)"; exit 1; }
done
LOADGEN=$BIN/loadgen

# A fresh secret per run: the tokens only need to match this modelgate.
WEBUI_SECRET_KEY="load-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export WEBUI_SECRET_KEY

log "creating database and fixture ($USERS users, $MODELS models)"
"$LOADGEN" setup --db "$TMP/webui.db" --fixture "$TMP/fixture.json" \
    --users "$USERS" --models "$MODELS" >&2

log "starting mock upstream"
"$BIN/mock-upstream" --listen 127.0.0.1:0 --models "$MODELS" --tokens "$TOKENS" \
    --token-delay-ms "$TOKEN_DELAY_MS" >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_ADDR=
for _ in $(seq 100); do
    MOCK_ADDR=$(sed -n 's/^listening //p' "$TMP/mock.out")
    [[ -n $MOCK_ADDR ]] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n $MOCK_ADDR ]] || { log "mock upstream did not start"; cat "$TMP/mock.err" >&2; exit 1; }
MOCK_PORT=${MOCK_ADDR##*:}

mapfile -t PORTS < <("$LOADGEN" free-port --count 3)
NGINX_PORT=${PORTS[0]}
MG_PORT=${PORTS[1]}
MG_ADMIN_PORT=${PORTS[2]}

NGINX_PID=
NGINX_BIN=$(command -v nginx || true)
[[ -z $NGINX_BIN && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
if [[ -n $NGINX_BIN ]]; then
    log "starting nginx on 127.0.0.1:$NGINX_PORT"
    mkdir -p "$TMP/nginx"
    USER_DIRECTIVE=
    [[ $(id -u) == 0 ]] && USER_DIRECTIVE="user root;"
    sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@LISTEN_PORT@|$NGINX_PORT|g" \
        -e "s|@UPSTREAM_PORT@|$MOCK_PORT|g" -e "s|@USER_DIRECTIVE@|$USER_DIRECTIVE|g" \
        -e "s|@WORKERS@|auto|g" \
        "$ROOT/load/nginx.conf" >"$TMP/nginx/nginx.conf"
    "$NGINX_BIN" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
        2>"$TMP/nginx/stderr.log" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    "$LOADGEN" wait --url "http://127.0.0.1:$NGINX_PORT/health" --timeout-s 15 || {
        log "nginx did not become ready"; cat "$TMP/nginx/error.log" "$TMP/nginx/stderr.log" >&2; exit 1; }
else
    log "nginx not installed (apt-get install nginx-light): skipping the nginx target"
fi

log "starting modelgate on 127.0.0.1:$MG_PORT (admin $MG_ADMIN_PORT)"
MODELGATE_LISTEN=127.0.0.1:$MG_PORT MODELGATE_ADMIN_LISTEN=127.0.0.1:$MG_ADMIN_PORT MODELGATE_EGRESS_LISTEN=127.0.0.1:0 \
    MODELGATE_UPSTREAM=http://127.0.0.1:$MOCK_PORT MODELGATE_DATABASE=$TMP/webui.db \
    MODELGATE_EGRESS_UPSTREAM=http://127.0.0.1:$MOCK_PORT/openai \
    RUST_LOG=warn "${MODELGATE_BIN:-$BIN/modelgate}" serve --config "${MODELGATE_CONFIG:-$ROOT/config/modelgate.toml}" \
    >"$TMP/modelgate.out" 2>"$TMP/modelgate.err" &
MG_PID=$!
PIDS+=("$MG_PID")
"$LOADGEN" wait --url "http://127.0.0.1:$MG_ADMIN_PORT/health/ready" --timeout-s 30 || {
    log "modelgate did not become ready"; tail -20 "$TMP/modelgate.err" >&2; exit 1; }

# label, URL, PID whose memory is reported, extra flags
TARGETS=("direct http://127.0.0.1:$MOCK_PORT $MOCK_PID")
if [[ -n $NGINX_PID ]]; then
    # The workers do the proxying (the master only supervises); report the first.
    NGINX_WORKER=$(ps -o pid= --ppid "$NGINX_PID" | head -1 | tr -d ' ')
    TARGETS+=("nginx http://127.0.0.1:$NGINX_PORT ${NGINX_WORKER:-$NGINX_PID}")
fi
TARGETS+=("modelgate http://127.0.0.1:$MG_PORT $MG_PID --expect-enforcement")

RC=0
run_load() { # phase label url pid [flags...]
    local phase=$1 label=$2 url=$3 pid=$4
    shift 4
    log "$phase: $label ($url)"
    local rc=0
    "$LOADGEN" run --label "$label" --target "$url" --pid "$pid" \
        --fixture "$TMP/fixture.json" --users "$USERS" --duration "$DURATION" \
        --warmup "$WARMUP" --json-out "$TMP/$phase-$label.json" "$@" >"$TMP/$phase-$label.md" || rc=$?
    if ((rc == 2)); then
        log "$phase/$label: SECURITY errors (see report)"
        ((RC == 0 || RC == 1)) && RC=2
    elif ((rc != 0)); then
        log "$phase/$label: loadgen failed ($rc)"
        ((RC == 0)) && RC=1
    fi
    [[ -f $TMP/$phase-$label.json ]]
}

RUNS=()
for t in "${TARGETS[@]}"; do
    read -r label url pid flags <<<"$t"
    # shellcheck disable=SC2086 # flags is a word list on purpose
    run_load closed "$label" "$url" "$pid" --think-ms "$THINK_MS" $flags &&
        RUNS+=(--run "$TMP/closed-$label.json")
done

HALVES=()
if [[ $HALF == 1 && -f $TMP/closed-modelgate.json ]]; then
    RATE=$("$LOADGEN" rate-of --report "$TMP/closed-modelgate.json" --fraction 0.5)
    log "half load: open loop at $RATE req/s (50% of modelgate's saturation)"
    for t in "${TARGETS[@]}"; do
        read -r label url pid flags <<<"$t"
        # shellcheck disable=SC2086
        run_load half "$label" "$url" "$pid" --rate "$RATE" $flags &&
            HALVES+=(--half "$TMP/half-$label.json")
    done
fi

((${#RUNS[@]} > 0)) || { log "no run produced a report"; exit 1; }
mkdir -p "$OUT"
echo
"$LOADGEN" compare "${RUNS[@]}" "${HALVES[@]}" \
    --json-out "$OUT/latest.json" --md-out "$OUT/latest.md"
"$LOADGEN" plot --input "$OUT/latest.json" --output "$OUT/latency.svg" >&2
echo
cat "$OUT/latest.md"
log "wrote $OUT/latest.json, $OUT/latest.md, $OUT/latency.svg"
if [[ -s $TMP/modelgate.err ]]; then
    log "modelgate stderr (last lines):"
    tail -5 "$TMP/modelgate.err" >&2
fi
exit "$RC"
