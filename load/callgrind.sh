#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike req/s and
# CPU time on a shared machine, the count barely moves between runs, so
# small changes to the request path can be compared. One worker runs under
# callgrind; wrk warms it up for 5 s at one connection, the counters are
# zeroed, then DURATION seconds of the same request are counted.
#
#   load/callgrind.sh chat      # ingress, authorized 2 KB chat POST (default)
#   load/callgrind.sh pass      # the same request with enforcement off
#   load/callgrind.sh egress    # egress, 2 KB chat call with a signed user header
#   SKIP_BUILD=1 DURATION=10 load/callgrind.sh chat
#
# Prints the count per request and keeps the profile (OUT, default
# load/results/callgrind.<mode>.out) for `callgrind_annotate --inclusive=yes`.
# Needs wrk and valgrind (apt-get install wrk valgrind) and python3.
set -euo pipefail

MODE=${1:-chat}
DURATION=${DURATION:-10}
case $MODE in chat | pass | egress) ;; *) echo "usage: $0 [chat|pass|egress]" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
export MODELGATE_WORKERS=1
NAME=callgrind
# shellcheck source=load/stack.sh
source "$(dirname "$0")/stack.sh"
OUT=${OUT:-$ROOT/load/results/callgrind.$MODE.out}

# modelgate under callgrind, started by start_stack through this wrapper.
REAL_BIN=${MODELGATE_BIN:-$BIN/modelgate}
cat >"$TMP/modelgate-vg" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$REAL_BIN" "\$@" 2>"$TMP/valgrind.log"
EOF
chmod +x "$TMP/modelgate-vg"
MODELGATE_BIN=$TMP/modelgate-vg
if [[ $MODE == pass ]]; then
    MODELGATE_CONFIG=$(pass_config)
fi
# start_stack's readiness wait is too short for valgrind's start-up: wait
# again, longer, before giving up.
start_stack 10 50 || true
"$BIN/loadgen" wait --url "http://$ADMIN/health" --timeout-s 180 >/dev/null

read -r TOKEN USER_ID MODEL < <(python3 -c '
import json, sys
u = json.load(open(sys.argv[1]))["users"][0]
print(u["token"], u["id"], u["allowed"][0])' "$TMP/fixture.json")
python3 - "$MODE" "$TOKEN" "$USER_ID" "$MODEL" "$FORWARD_SECRET" >"$TMP/req.lua" <<'PY'
import base64, hashlib, hmac, json, sys, time
mode, token, user_id, model, secret = sys.argv[1:]
body = json.dumps({"model": model, "stream": False,
                   "messages": [{"role": "user", "content": "x" * 1900}]})
print('wrk.method = "POST"')
print('wrk.body = ' + json.dumps(body))
print('wrk.headers["Content-Type"] = "application/json"')
if mode == "egress":
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user_id, "role": "user", "iss": "open-webui",
                             "iat": now, "exp": now + 3600}).encode())
    sig = b64(hmac.new(secret.encode(), head + b"." + claims, hashlib.sha256).digest())
    print('wrk.path = "/chat/completions"')
    print('wrk.headers["Authorization"] = "Bearer sk-or-load"')
    print('wrk.headers["X-OpenWebUI-User-Jwt"] = "' + (head + b"." + claims + b"." + sig).decode() + '"')
else:
    print('wrk.path = "/api/chat/completions"')
    print(f'wrk.headers["Authorization"] = "Bearer {token}"')
PY
TARGET=$INGRESS
[[ $MODE == egress ]] && TARGET=$EGRESS

out=$(wrk -t1 -c1 -d5s -s "$TMP/req.lua" "http://$TARGET")
if grep -q Non-2xx <<<"$out"; then log "$MODE: the request is not answered 200"; exit 1; fi
callgrind_control -z "$MG_PID" >/dev/null 2>&1
out=$(wrk -t1 -c1 -d"${DURATION}s" -s "$TMP/req.lua" "http://$TARGET")
callgrind_control -d "$MG_PID" >/dev/null 2>&1
requests=$(awk '/requests in/ {print $1}' <<<"$out")
profiles=("$TMP"/cg.out.*)
profile=${profiles[0]}
total=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
cp "$profile" "$OUT"
echo "$MODE: $((total / requests)) instructions per request ($requests requests; profile $OUT)"
