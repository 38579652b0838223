#!/usr/bin/env bash
# Where a proxied call's CPU goes, by process: the authorized 2 KB chat POST
# sent straight to the mock upstream, through nginx, through modelgate, and
# through a second modelgate with enforcement off (its forwarding alone), with the user and system CPU time each process spent per request (from
# /proc, and wrk's own from time(1)). On a machine where the load generator,
# the upstream and the proxy share the cores, throughput is the cores
# divided by the sum of these: it shows what a proxy must cost to keep up
# with another.
#
#   load/cpu.sh                          # 64 then 1 connection, 3 rounds of 5 s
#   ROUNDS=5 DURATION=5 CONNECTIONS=64 SKIP_BUILD=1 load/cpu.sh
#
# Writes load/results/cpu.md (OUT to change the directory). Needs wrk and
# nginx (apt-get install wrk nginx-light), python3 and GNU time.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-"64 1"}
CORES=$(nproc)
export MODELGATE_WORKERS=${MODELGATE_WORKERS:-$CORES}
NAME=cpu
# shellcheck source=load/stack.sh
source "$(dirname "$0")/stack.sh"
OUT=${OUT:-$ROOT/load/results}
[[ -x /usr/bin/time ]] || { log "GNU time not installed (apt-get install time)"; exit 1; }
start_stack 10 300
start_nginx "$CORES"
[[ -n $NGINX_ADDR ]] || exit 1

# The same build with `bypass_model_access_control`: forwarding, no gate.
ENFORCING=$INGRESS ENFORCING_PID=$MG_PID
pass=$(pass_config)
start_modelgate "$pass" pass
PASS=$INGRESS PASS_PID=$MG_PID

read -r TOKEN MODEL < <(python3 -c '
import json, sys
u = json.load(open(sys.argv[1]))["users"][0]
print(u["token"], u["allowed"][0])' "$TMP/fixture.json")
python3 - "$TOKEN" "$MODEL" >"$TMP/chat.lua" <<'PY'
import json, sys
token, model = sys.argv[1:]
body = json.dumps({"model": model, "stream": False,
                   "messages": [{"role": "user", "content": "x" * 1900}]})
print('wrk.method = "POST"\nwrk.path = "/api/chat/completions"')
print(f'wrk.headers["Authorization"] = "Bearer {token}"')
print('wrk.headers["Content-Type"] = "application/json"')
print("wrk.body = " + json.dumps(body))
PY

mock_pid=$(pgrep -f "mock-upstream --listen" | head -1)
nginx_pids=$(pgrep -f "nginx: worker" | tr '\n' ' ')
# utime and stime of the given pids, in clock ticks.
ticks() {
    local pid u=0 s=0 a b
    for pid in "$@"; do
        read -r a b < <(awk '{print $14, $15}' "/proc/$pid/stat")
        u=$((u + a)) s=$((s + b))
    done
    echo "$u $s"
}

RESULTS=$TMP/results.tsv
: >"$RESULTS"
for c in $CONNECTIONS; do
    for round in $(seq "$ROUNDS"); do
        for t in "direct $MOCK_ADDR" "nginx $NGINX_ADDR $nginx_pids" "modelgate $ENFORCING $ENFORCING_PID" \
            "forwarding $PASS $PASS_PID"; do
            read -r label addr pids <<<"$t"
            read -ra pids <<<"$pids"
            log "$c connection(s), round $round: $label"
            read -r mu0 ms0 < <(ticks "$mock_pid")
            read -r pu0 ps0 < <(ticks "${pids[@]}")
            out=$(/usr/bin/time -f '%U %S' -o "$TMP/wrk.time" \
                wrk -t "$([[ $c == 1 ]] && echo 1 || echo 2)" -c "$c" -d "${DURATION}s" \
                -s "$TMP/chat.lua" "http://$addr")
            read -r mu1 ms1 < <(ticks "$mock_pid")
            read -r pu1 ps1 < <(ticks "${pids[@]}")
            if grep -q 'Non-2xx' <<<"$out"; then
                log "$label answered errors:"; echo "$out" >&2; exit 1
            fi
            n=$(awk '/requests in/ {print $1}' <<<"$out")
            printf '%s\t%s\t%s\t%s\t%s %s %s %s %s %s\n' "$c" "$label" "$n" "$(cat "$TMP/wrk.time")" \
                $((pu1 - pu0)) $((ps1 - ps0)) $((mu1 - mu0)) $((ms1 - ms0)) \
                "$(getconf CLK_TCK)" "$DURATION" >>"$RESULTS"
        done
    done
done

mkdir -p "$OUT"
python3 - "$RESULTS" "$CORES" "$ROUNDS" "$DURATION" >"$OUT/cpu.md" <<'PY'
import statistics, sys
from collections import defaultdict
path, cores, rounds, duration = sys.argv[1:]
runs = defaultdict(list)
for line in open(path):
    c, label, n, wrk_time, rest = line.rstrip("\n").split("\t")
    wu, ws = map(float, wrk_time.split())
    pu, ps, mu, ms, hz, secs = map(float, rest.split())
    n = int(n)
    us = lambda ticks: ticks / hz * 1e6 / n
    runs[(int(c), label)].append(dict(rps=n / secs, pu=us(pu), ps=us(ps), mu=us(mu), ms=us(ms),
                                      wu=wu * 1e6 / n, ws=ws * 1e6 / n))
med = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"wrk, {rounds} rounds of {duration} s per row (medians); {cores} cores shared by all processes\n")
print("| connections | target | req/s | proxy user / sys us | mock user / sys us | wrk user / sys us | all processes us |")
print("|---:|---|---:|---:|---:|---:|---:|")
order = {"direct": 0, "nginx": 1, "forwarding": 2, "modelgate": 3}
names = {"forwarding": "modelgate, enforcement off"}
for (c, label), rows in sorted(runs.items(), key=lambda kv: (-kv[0][0], order[kv[0][1]])):
    total = sum(med(rows, k) for k in ("pu", "ps", "mu", "ms", "wu", "ws"))
    proxy = "-" if label == "direct" else f"{med(rows, 'pu'):.1f} / {med(rows, 'ps'):.1f}"
    print(f"| {c} | {names.get(label, label)} | {med(rows, 'rps'):,.0f} | {proxy} | {med(rows, 'mu'):.1f} / {med(rows, 'ms'):.1f} "
          f"| {med(rows, 'wu'):.1f} / {med(rows, 'ws'):.1f} | {total:.1f} |")
PY
cat "$OUT/cpu.md"
log "wrote $OUT/cpu.md"
