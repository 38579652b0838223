#!/usr/bin/env bash
# The egress gate's cost per call: the same 2 KB chat completion sent by wrk
# straight to the mock model API and through modelgate's egress listener
# (signed user header verified, body parsed, decision, forward), at 1 and 64
# connections, one run, same machine. Prints a Markdown table.
#
#   load/egress.sh            # builds release binaries first
#   SKIP_BUILD=1 DURATION=10 load/egress.sh
#
# Needs wrk (apt-get install wrk) and python3 (stdlib only).
set -euo pipefail

DURATION=${DURATION:-10}
NAME=egress
# shellcheck source=load/stack.sh
source "$(dirname "$0")/stack.sh"
start_stack 10 50

# A user of the fixture, one of their models, and the header Open WebUI
# would sign for them (HS256, claims as utils/headers.py mints them).
read -r USER_ID MODEL < <(python3 -c '
import json, sys
u = json.load(open(sys.argv[1]))["users"][0]
print(u["id"], u["allowed"][0])' "$TMP/fixture.json")
JWT=$(python3 -c '
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": sys.argv[2], "role": "user", "iss": "open-webui", "iat": now, "exp": now + 3600}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())' "$FORWARD_SECRET" "$USER_ID")

python3 -c '
import json, sys
text = "x" * 1900
body = json.dumps({"model": sys.argv[1], "stream": False,
                   "messages": [{"role": "user", "content": text}]})
print("wrk.method = \"POST\"")
print("wrk.body = " + json.dumps(body))
print("wrk.headers[\"Content-Type\"] = \"application/json\"")
print("wrk.headers[\"Authorization\"] = \"Bearer sk-or-load\"")
print("wrk.headers[\"X-OpenWebUI-User-Jwt\"] = \"" + sys.argv[2] + "\"")' "$MODEL" "$JWT" >"$TMP/post.lua"

# Sanity: the egress lets this call through (not a refusal measured fast).
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$EGRESS/chat/completions" \
    -H 'Content-Type: application/json' -H "X-OpenWebUI-User-Jwt: $JWT" \
    -d "{\"model\":\"$MODEL\",\"messages\":[]}")
[[ $code == 200 ]] || { log "egress answered $code to a permitted call"; cat "$TMP/mg.err" >&2; exit 1; }

run() { # name url connections
    local out
    out=$(wrk -t "$([[ $3 == 1 ]] && echo 1 || echo 2)" -c "$3" -d "${DURATION}s" --latency \
        -s "$TMP/post.lua" "$2")
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '| %s | %s | %s | %s | %s |\n' "$3" "$1" "$rps" "$p50" "$p99"
}

echo "| connections | target | req/s | p50 | p99 |"
echo "| ---: | --- | ---: | ---: | ---: |"
for c in 1 64; do
    run "direct (mock model API)" "http://$MOCK_ADDR/openai/chat/completions" "$c"
    run "through the egress gate" "http://$EGRESS/chat/completions" "$c"
done
