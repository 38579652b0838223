#!/usr/bin/env bash
# Runs `promtool check metrics` on a live /metrics of the given modelgate
# binary, in both exposition formats:
#   - text/plain (Prometheus text format 0.0.4): promtool must report nothing;
#   - OpenMetrics: promtool only parses the 0.0.4 text format, where an
#     OpenMetrics counter family `x` (samples `x_total`) reads as a family
#     `x_total` without help text. Exactly those reports are expected and
#     skipped; anything else (a parse error, a naming problem) fails. The
#     OpenMetrics grammar itself is checked by tests/metrics_text.rs.
#
#   bash .ci/check-metrics.sh target/debug/modelgate
set -euo pipefail

bin=${1:?usage: check-metrics.sh MODELGATE_BINARY}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

printf '[log]\nformat = "json"\n' >"$work/modelgate.toml"
env -i PATH="$PATH" \
  MODELGATE_LISTEN=127.0.0.1:0 \
  MODELGATE_ADMIN_LISTEN=127.0.0.1:0 \
  MODELGATE_EGRESS_LISTEN=127.0.0.1:0 \
  MODELGATE_DATABASE="$work/webui.db" \
  RUST_LOG=info \
  "$bin" serve --config "$work/modelgate.toml" >/dev/null 2>"$work/log" &
pid=$!

# The admin address is in the "admin listening" log line (port 0 was asked).
admin=
for _ in $(seq 1 300); do
  line=$(grep -m1 '"message":"admin listening"' "$work/log" || true)
  if [ -n "$line" ]; then
    admin=$(printf '%s\n' "$line" | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$work/log" >&2
    echo "modelgate exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$admin" ]; then
  cat "$work/log" >&2
  echo "no 'admin listening' line within 30 s" >&2
  exit 1
fi

curl -fsS -H 'Accept: text/plain; version=0.0.4' "http://$admin/metrics" >"$work/text.prom"
grep -q '^process_resident_memory_bytes ' "$work/text.prom"
promtool check metrics <"$work/text.prom"
echo "text format: promtool check metrics clean ($(grep -c '^# TYPE ' "$work/text.prom") families)"

curl -fsS -H 'Accept: application/openmetrics-text' "http://$admin/metrics" >"$work/om.txt"
test "$(tail -n1 "$work/om.txt")" = "# EOF"
problems=$(promtool check metrics <"$work/om.txt" 2>&1 || true)
unexpected=
while read -r name rest; do
  [ -n "$name" ] || continue
  family=${name%_total}
  if [ "$rest" = "no help text" ] && [ "$family" != "$name" ] &&
    grep -qx "# TYPE $family counter" "$work/om.txt"; then
    continue
  fi
  unexpected+="$name $rest"$'\n'
done <<<"$problems"
if [ -n "$unexpected" ]; then
  printf 'OpenMetrics: unexpected promtool problems:\n%s' "$unexpected" >&2
  exit 1
fi
echo "OpenMetrics: promtool check metrics reports only the counters' _total naming"
