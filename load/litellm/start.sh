# shellcheck shell=bash
# LiteLLM's proxy as an optional target of load/parity.sh (LITELLM=1).
# Sourced after load/stack.sh and start_stack (uses ROOT BIN TMP PIDS
# MOCK_ADDR and log):
#
#   start_litellm MODEL TOKEN [DENIED_MODEL]
#
# Starts `litellm` on a free 127.0.0.1 port, routing MODEL (and a second
# model, DENIED_MODEL) to the mock upstream's OpenAI-compatible API, and
# sets LITELLM_ADDR. The bearer key it accepts is TOKEN; the key may use
# MODEL only (custom auth returns models=[MODEL] and LiteLLM's own checks
# refuse anything else, see custom_auth.py). DENIED_MODEL defaults to a
# model the fixture ($TMP/fixture.json) forbids to TOKEN's user.
#
# Knobs: LITELLM_VENV (~/.cache/modelgate-load/litellm-venv, created with
# `pip install 'litellm[proxy]'` when missing), LITELLM_WORKERS (1).
# No database: keys, teams and spend live only in the config and in
# custom_auth.py, so nothing needs Prisma or a DATABASE_URL.

LITELLM_VENV=${LITELLM_VENV:-$HOME/.cache/modelgate-load/litellm-venv}

start_litellm() { # model token [denied model]
    local model=$1 token=$2 denied=${3:-} dir=$TMP/litellm port master
    if [[ ! -x $LITELLM_VENV/bin/litellm ]]; then
        log "creating $LITELLM_VENV (pip install 'litellm[proxy]')"
        python3 -m venv "$LITELLM_VENV" >&2
        "$LITELLM_VENV/bin/pip" install --quiet 'litellm[proxy]' >&2
    fi
    if [[ -z $denied ]]; then
        denied=$(python3 - "$TMP/fixture.json" "$token" "$model" <<'PY'
import json, sys
path, token, model = sys.argv[1:]
try:
    users = json.load(open(path))["users"]
except OSError:
    users = []
print(next((m for u in users if u["token"] == token for m in u["forbidden"] if m != model),
           "openai/litellm-denied"))
PY
        )
    fi

    # Config next to a copy of custom_auth.py: LiteLLM resolves
    # general_settings.custom_auth ("custom_auth.user_api_key_auth") relative
    # to the config file's directory. Both models go to the mock through
    # LiteLLM's OpenAI provider: "openai/" + the model id (which has a slash
    # of its own), api_base the mock's /openai.
    mkdir -p "$dir"
    cp "$ROOT/load/litellm/custom_auth.py" "$dir/"
    master="sk-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    local m entries=
    for m in "$model" "$denied"; do
        entries+="  - model_name: \"$m\"
    litellm_params:
      model: \"openai/$m\"
      api_base: \"http://$MOCK_ADDR/openai\"
      api_key: \"unused\"
"
    done
    cat >"$dir/config.yaml" <<EOF
model_list:
$entries
general_settings:
  # Required to start at all (LiteLLM refuses an unset master key), and it
  # takes the proxy out of "no-auth dev mode", in which the centralized
  # common checks are skipped. Nobody is given it: custom_auth decides.
  master_key: "$master"
  custom_auth: custom_auth.user_api_key_auth
  # Run LiteLLM's common checks for custom-auth requests ...
  custom_auth_run_common_checks: true

litellm_settings:
  # ... and its post-custom-auth checks, which is where the key's own model
  # allowlist (the "models" custom_auth returns) is enforced
  # (enforce_key_and_fallback_model_access; it needs both settings).
  enable_post_custom_auth_checks: true
EOF

    port=$("$BIN/loadgen" free-port --count 1)
    # No database and nothing fetched from the network: the DB variables
    # are removed, the model cost map is the one in the package.
    env -u DATABASE_URL -u DIRECT_URL -u DATABASE_URL_READ_REPLICA \
        -u DATABASE_HOST -u DATABASE_USERNAME -u DATABASE_PASSWORD -u DATABASE_NAME \
        -u LITELLM_MASTER_KEY -u REDIS_HOST -u REDIS_URL \
        LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_DONT_SHOW_FEEDBACK_BOX=True \
        MODELGATE_LOAD_LITELLM_KEY="$token" \
        MODELGATE_LOAD_LITELLM_MODELS="[\"$model\"]" \
        "$LITELLM_VENV/bin/litellm" --config "$dir/config.yaml" --host 127.0.0.1 --port "$port" \
        --num_workers "${LITELLM_WORKERS:-1}" >"$TMP/litellm.log" 2>&1 &
    PIDS+=("$!")
    LITELLM_ADDR=127.0.0.1:$port
    "$BIN/loadgen" wait --url "http://$LITELLM_ADDR/health/liveliness" --timeout-s 120 >/dev/null || {
        log "litellm did not become ready"; tail -n 40 "$TMP/litellm.log" >&2; exit 1; }
    log "litellm on $LITELLM_ADDR (${LITELLM_WORKERS:-1} worker(s)): $model allowed, $denied not"
}
