#!/usr/bin/env bash
# Pass-through parity: the same two requests sent by wrk straight to the
# mock upstream ("direct"), through nginx as a plain proxy, through
# modelgate's ingress (enforcing: the chat call is authorized, the list is
# filtered), and optionally through LiteLLM, at 1 and 64 connections, in
# one run on one machine. Prints and writes (load/results/parity.md) the
# table with the ratios to nginx and the latency each proxy adds over direct.
#
#   load/parity.sh                          # builds release binaries first
#   SKIP_BUILD=1 DURATION=10 load/parity.sh
#   LITELLM=1 load/parity.sh                # adds LiteLLM (see load/litellm/)
#
# Knobs: DURATION (s per row, 10), CONNECTIONS ("1 64"), NGINX_WORKERS and
# MODELGATE_WORKERS (both default to one per core), LITELLM (0), OUT.
# Needs wrk and nginx (apt-get install wrk nginx-light) and python3.
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-"1 64"}
CORES=$(nproc)
NGINX_WORKERS=${NGINX_WORKERS:-$CORES}
export MODELGATE_WORKERS=${MODELGATE_WORKERS:-$CORES}
NAME=parity
# shellcheck source=load/stack.sh
source "$(dirname "$0")/stack.sh"
OUT=${OUT:-$ROOT/load/results}
start_stack 10 300
start_nginx "$NGINX_WORKERS"

# One user of the fixture, a model they may use, and their session token.
read -r TOKEN MODEL DENIED < <(python3 -c '
import json, sys
u = json.load(open(sys.argv[1]))["users"][0]
print(u["token"], u["allowed"][0], u["forbidden"][0])' "$TMP/fixture.json")

# wrk scripts: a 2 KB chat completion (POST) and the 300-model list (GET).
lua() { # file method path [body]
    python3 - "$@" "$TOKEN" <<'PY'
import json, sys
out, method, path, body, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
with open(out, "w") as f:
    f.write(f'wrk.method = "{method}"\nwrk.path = "{path}"\n')
    f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    if body:
        f.write("wrk.body = " + json.dumps(body) + "\n")
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
PY
}
CHAT_BODY=$(python3 -c '
import json, sys
print(json.dumps({"model": sys.argv[1], "stream": False,
                  "messages": [{"role": "user", "content": "x" * 1900}]}))' "$MODEL")
lua "$TMP/chat.lua" POST /api/chat/completions "$CHAT_BODY"
lua "$TMP/list.lua" GET /api/models ""

TARGETS=("direct $MOCK_ADDR")
[[ -n $NGINX_ADDR ]] && TARGETS+=("nginx $NGINX_ADDR")
TARGETS+=("modelgate $INGRESS")
if [[ ${LITELLM:-0} == 1 ]]; then
    # shellcheck source=load/litellm/start.sh
    source "$ROOT/load/litellm/start.sh"
    start_litellm "$MODEL" "$TOKEN" "$DENIED"
    TARGETS+=("litellm $LITELLM_ADDR")
fi

# Sanity: every target answers both requests with 200 (a refusal measured
# fast would flatter the proxy), and modelgate's list is filtered.
for t in "${TARGETS[@]}"; do
    read -r label addr <<<"$t"
    for r in chat list; do
        path=/api/chat/completions data=(--data "$CHAT_BODY" -H 'Content-Type: application/json')
        [[ $r == list ]] && path=/api/models data=()
        [[ $label == litellm ]] && path=${path/\/api\/models//v1/models} && path=${path/\/api\//\/v1\/}
        code=$(curl -s -o "$TMP/$label-$r.out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
            "${data[@]}" "http://$addr$path")
        [[ $code == 200 ]] || { log "$label answered $code to $r"; head -c 300 "$TMP/$label-$r.out" >&2; exit 1; }
    done
done
# The proxies that enforce refuse the user's forbidden model.
for t in "${TARGETS[@]}"; do
    read -r label addr <<<"$t"
    [[ $label == modelgate || $label == litellm ]] || continue
    path=/api/chat/completions
    [[ $label == litellm ]] && path=/v1/chat/completions
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data "{\"model\":\"$DENIED\",\"messages\":[]}" \
        "http://$addr$path")
    [[ $code == 401 || $code == 403 ]] || { log "$label answered $code to a forbidden model"; exit 1; }
done
listed() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$1"; }
[[ $(listed "$TMP/modelgate-list.out") -lt $(listed "$TMP/direct-list.out") ]] ||
    { log "modelgate did not filter the model list"; exit 1; }

# wrk's latency with its unit (41.00us, 1.23ms, 1.02s) in milliseconds.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[^m]s$/) n *= 1000; printf "%.3f", n }'; }

RESULTS=$TMP/results.tsv
: >"$RESULTS"
for c in $CONNECTIONS; do
    for r in chat list; do
        for t in "${TARGETS[@]}"; do
            read -r label addr <<<"$t"
            script=$TMP/$r.lua
            if [[ $label == litellm ]]; then
                sed -e 's|/api/models|/v1/models|' -e 's|/api/chat/|/v1/chat/|' "$script" >"$TMP/litellm-$r.lua"
                script=$TMP/litellm-$r.lua
            fi
            log "$r, $c connection(s): $label"
            out=$(wrk -t "$([[ $c == 1 ]] && echo 1 || echo 2)" -c "$c" -d "${DURATION}s" --latency \
                -s "$script" "http://$addr")
            if grep -q 'Non-2xx' <<<"$out"; then
                log "$label answered errors under load:"; echo "$out" >&2; exit 1
            fi
            rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
            p50=$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
            p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$r" "$label" "$rps" "$p50" "$p99" >>"$RESULTS"
        done
    done
done

mkdir -p "$OUT"
python3 - "$RESULTS" "$CORES" "$NGINX_WORKERS" "$MODELGATE_WORKERS" "$DURATION" >"$OUT/parity.md" <<'PY'
import sys
from collections import defaultdict
path, cores, nginx_w, mg_w, duration = sys.argv[1:]
rows = defaultdict(dict)
for line in open(path):
    c, route, label, rps, p50, p99 = line.split("\t")
    rows[(int(c), route)][label] = (float(rps), float(p50), float(p99))
labels = [l for l in ("direct", "nginx", "modelgate", "litellm") if any(l in r for r in rows.values())]
names = {"chat": "POST 2 KB chat (authorized)", "list": "GET 300-model list (filtered)"}
print(f"wrk, {duration} s per row; {cores} cores; nginx {nginx_w} worker(s), modelgate {mg_w} worker(s)\n")
print("| connections | route | " + " | ".join(f"{l} req/s" for l in labels) + " | modelgate / nginx |"
      + ("" if "litellm" not in labels else " modelgate / litellm |"))
print("|---:|---|" + "---:|" * len(labels) + "---:|" + ("" if "litellm" not in labels else "---:|"))
for (c, route), r in sorted(rows.items()):
    ratio = lambda a, b: f"{r[a][0] / r[b][0]:.2f}" if a in r and b in r else "-"
    line = f"| {c} | {names[route]} | " + " | ".join(f"{r[l][0]:,.0f}" if l in r else "-" for l in labels)
    line += f" | **{ratio('modelgate', 'nginx')}** |"
    if "litellm" in labels:
        line += f" {ratio('modelgate', 'litellm')} |"
    print(line)
print()
print("| connections | route | " + " | ".join(f"{l} p50 / p99 ms" for l in labels) + " | added p50 ms: "
      + ", ".join(l for l in labels if l != "direct") + " |")
print("|---:|---|" + "---:|" * len(labels) + "---:|")
for (c, route), r in sorted(rows.items()):
    d = r.get("direct")
    added = ", ".join(f"{r[l][1] - d[1]:+.3f}" if d and l in r else "-" for l in labels if l != "direct")
    print(f"| {c} | {names[route]} | " + " | ".join(f"{r[l][1]:.3f} / {r[l][2]:.3f}" if l in r else "-" for l in labels)
          + f" | {added} |")
PY
cat "$OUT/parity.md"
log "wrote $OUT/parity.md"
