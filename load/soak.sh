#!/usr/bin/env bash
# Soak: modelgate under a steady mixed load for DURATION seconds, its
# resident memory sampled every SAMPLE seconds; prints the samples' summary
# and the least-squares slope of RSS over time (a leak shows as a slope that
# does not fall towards zero as DURATION grows).
#
# The mix, three wrk processes at once against the release binary:
#   - model lists through the ingress (filtered per user),
#   - chat completions through the ingress, half of them refused,
#   - chat completions through the egress (signed user header).
#
#   load/soak.sh                       # 600 s, builds release binaries first
#   SKIP_BUILD=1 DURATION=120 load/soak.sh
#
# Needs wrk (apt-get install wrk) and python3 (stdlib only).
set -euo pipefail

DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-5}
CONNECTIONS=${CONNECTIONS:-16}
NAME=soak
# shellcheck source=load/stack.sh
source "$(dirname "$0")/stack.sh"
start_stack 200 300

# wrk scripts: each request picks a user of the fixture (and, for chats, a
# permitted or a forbidden model of theirs) at random.
python3 - "$TMP" "$FORWARD_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
tmp, secret = sys.argv[1], sys.argv[2]
users = json.load(open(f"{tmp}/fixture.json"))["users"]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
def signed(uid):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": uid, "role": "user", "iss": "open-webui", "iat": now,
                           "exp": now + 86400}).encode())
    sig = b64(hmac.new(secret.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()
rows = [{"token": u["token"], "jwt": signed(u["id"]), "ok": u["allowed"][0],
         "no": (u["forbidden"] or u["allowed"])[0]} for u in users if u["allowed"]]
table = "local users = {" + ",".join(
    "{token=%s, jwt=%s, ok=%s, no=%s}" % tuple(json.dumps(r[k]) for k in ("token", "jwt", "ok", "no"))
    for r in rows) + "}\n"
body = 'local function chat(m) return \'{"model":"\' .. m .. \'","stream":false,"messages":[{"role":"user","content":"soak"}]}\' end\n'
open(f"{tmp}/lists.lua", "w").write(table + """
request = function()
  local u = users[math.random(#users)]
  return wrk.format("GET", "/api/models", {["Authorization"] = "Bearer " .. u.token})
end
""")
open(f"{tmp}/chats.lua", "w").write(table + body + """
request = function()
  local u = users[math.random(#users)]
  local m = (math.random(2) == 1) and u.ok or u.no
  return wrk.format("POST", "/api/chat/completions",
    {["Authorization"] = "Bearer " .. u.token, ["Content-Type"] = "application/json"}, chat(m))
end
""")
open(f"{tmp}/egress.lua", "w").write(table + body + """
request = function()
  local u = users[math.random(#users)]
  return wrk.format("POST", "/chat/completions",
    {["X-OpenWebUI-User-Jwt"] = u.jwt, ["Content-Type"] = "application/json"}, chat(u.ok))
end
""")
PY

for mix in "lists http://$INGRESS" "chats http://$INGRESS" "egress http://$EGRESS"; do
    read -r name url <<<"$mix"
    wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" -s "$TMP/$name.lua" "$url" >"$TMP/wrk-$name.out" 2>&1 &
    PIDS+=("$!")
done

log "soaking for ${DURATION}s (RSS every ${SAMPLE}s)"
start=$(date +%s)
: >"$TMP/rss.tsv"
while (( $(date +%s) - start < DURATION )); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$MG_PID/status")
    echo "$(( $(date +%s) - start )) $rss" >>"$TMP/rss.tsv"
    sleep "$SAMPLE"
done
sleep 2

total=0
for name in lists chats egress; do
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk-$name.out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk-$name.out")
    log "$name: $n requests, $rps req/s"
    total=$(( total + ${n:-0} ))
done
python3 - "$TMP/rss.tsv" "$total" "$DURATION" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
t = [r[0] for r in rows]; kib = [r[1] for r in rows]
n = len(rows)
mt, mk = sum(t) / n, sum(kib) / n
slope = sum((a - mt) * (b - mk) for a, b in zip(t, kib)) / (sum((a - mt) ** 2 for a in t) or 1)
# The second half alone: warm-up (caches filling) excluded.
half = rows[n // 2:]
ht = [r[0] for r in half]; hk = [r[1] for r in half]
hmt, hmk = sum(ht) / len(half), sum(hk) / len(half)
hslope = sum((a - hmt) * (b - hmk) for a, b in zip(ht, hk)) / (sum((a - hmt) ** 2 for a in ht) or 1)
mib = lambda k: k / 1024
print(f"| duration | requests | RSS start | RSS end | RSS max | slope (all) | slope (2nd half) |")
print(f"| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| {sys.argv[3]} s | {int(sys.argv[2])} | {mib(kib[0]):.1f} MiB | {mib(kib[-1]):.1f} MiB | "
      f"{mib(max(kib)):.1f} MiB | {mib(slope) * 3600:+.2f} MiB/h | {mib(hslope) * 3600:+.2f} MiB/h |")
PY
