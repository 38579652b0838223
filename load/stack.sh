# shellcheck shell=bash
# Sourced by load/egress.sh and load/soak.sh: a release modelgate, its
# fixture database and the mock model API, all on 127.0.0.1 ports the OS
# picks, stopped (and the temporary directory removed) on exit.
#
#   NAME=egress; source load/stack.sh; start_stack USERS MODELS
#
# Sets ROOT BIN TMP; after start_stack: MOCK_ADDR INGRESS EGRESS ADMIN
# MG_PID FORWARD_SECRET (and exports WEBUI_SECRET_KEY). start_modelgate
# starts one more modelgate (its addresses replace those four), pass_config
# gives a config with enforcement off.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
TMP=$(mktemp -d "${TMPDIR:-/tmp}/modelgate-$NAME.XXXXXX")
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
log() { echo "$NAME.sh: $*" >&2; }

command -v wrk >/dev/null || { log "wrk not installed (apt-get install wrk)"; exit 1; }
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --workspace) >&2
fi

start_stack() { # users models
    WEBUI_SECRET_KEY="$NAME-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    export WEBUI_SECRET_KEY
    FORWARD_SECRET="fwd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    "$BIN/loadgen" setup --db "$TMP/webui.db" --fixture "$TMP/fixture.json" --users "$1" --models "$2" >&2

    "$BIN/mock-upstream" --listen 127.0.0.1:0 --models "$2" --threads 1 >"$TMP/mock.out" 2>"$TMP/mock.err" &
    PIDS+=("$!")
    MOCK_ADDR=
    for _ in $(seq 100); do
        MOCK_ADDR=$(sed -n 's/^listening //p' "$TMP/mock.out")
        [[ -n $MOCK_ADDR ]] && break
        sleep 0.1
    done
    [[ -n $MOCK_ADDR ]] || { log "mock upstream did not start"; exit 1; }

    start_modelgate "${MODELGATE_CONFIG:-$ROOT/config/modelgate.toml}" mg
}

start_modelgate() { # config name; after start_stack: another modelgate on the same mock and database
    local ports
    mapfile -t ports < <("$BIN/loadgen" free-port --count 3)
    INGRESS=127.0.0.1:${ports[0]}
    EGRESS=127.0.0.1:${ports[1]}
    ADMIN=127.0.0.1:${ports[2]}
    MODELGATE_LISTEN=$INGRESS MODELGATE_ADMIN_LISTEN=$ADMIN \
        MODELGATE_EGRESS_LISTEN=$EGRESS MODELGATE_EGRESS_UPSTREAM="http://$MOCK_ADDR/openai" \
        MODELGATE_UPSTREAM="http://$MOCK_ADDR" MODELGATE_DATABASE="$TMP/webui.db" \
        FORWARD_USER_INFO_HEADER_JWT_SECRET=$FORWARD_SECRET RUST_LOG=warn \
        "${MODELGATE_BIN:-$BIN/modelgate}" serve --config "$1" >"$TMP/$2.out" 2>"$TMP/$2.err" &
    MG_PID=$!
    PIDS+=("$MG_PID")
    "$BIN/loadgen" wait --url "http://$ADMIN/health" --timeout-s 15 >/dev/null
}

pass_config() { # writes the default config with enforcement off; prints its path
    sed 's/^bypass_model_access_control = false/bypass_model_access_control = true/' \
        "$ROOT/config/modelgate.toml" >"$TMP/pass.toml"
    grep -q '^bypass_model_access_control = true' "$TMP/pass.toml" ||
        { log "config/modelgate.toml has no 'bypass_model_access_control = false' line"; exit 1; }
    echo "$TMP/pass.toml"
}

start_nginx() { # workers ("auto" = one per core); sets NGINX_ADDR, or leaves it empty without nginx
    NGINX_ADDR=
    local bin
    bin=$(command -v nginx || true)
    [[ -z $bin && -x /usr/sbin/nginx ]] && bin=/usr/sbin/nginx
    [[ -n $bin ]] || { log "nginx not installed (apt-get install nginx-light): no nginx target"; return 0; }
    local port user=
    port=$("$BIN/loadgen" free-port --count 1)
    [[ $(id -u) == 0 ]] && user="user root;"
    mkdir -p "$TMP/nginx"
    sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@LISTEN_PORT@|$port|g" \
        -e "s|@UPSTREAM_PORT@|${MOCK_ADDR##*:}|g" -e "s|@USER_DIRECTIVE@|$user|g" \
        -e "s|@WORKERS@|$1|g" "$ROOT/load/nginx.conf" >"$TMP/nginx/nginx.conf"
    "$bin" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" 2>"$TMP/nginx/stderr.log" &
    PIDS+=("$!")
    NGINX_ADDR=127.0.0.1:$port
    "$BIN/loadgen" wait --url "http://$NGINX_ADDR/health" --timeout-s 15 >/dev/null || {
        log "nginx did not become ready"; cat "$TMP/nginx/error.log" >&2; exit 1; }
}
