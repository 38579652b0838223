#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each,
# default 60), growing fuzz/corpus/<target> in place with the new inputs
# libFuzzer finds. Fails, naming the crash artifacts, if any target crashes.
#
#   fuzz/run.sh                      # every target
#   FUZZ_SECONDS=20 fuzz/run.sh jwt  # some targets, shorter
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
rss_mb="${FUZZ_RSS_MB:-2048}"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build of every target first, so they compile together and the timed
# runs below measure fuzzing, not compiling.
cargo +nightly fuzz build

failed=()
artifacts=()
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  log="fuzz/artifacts/$t.log"
  mkdir -p "$corpus" fuzz/artifacts
  before=$(find "$corpus" -type f | wc -l)
  printf -- '--- %s: %ss, corpus %s inputs\n' "$t" "$seconds" "$before"
  start=$(date +%s)
  # cargo-fuzz writes crash inputs to fuzz/artifacts/<target>/, never into
  # the corpus; libFuzzer's final stats (execs, exec/s) are kept from the log.
  if cargo +nightly fuzz run "$t" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -print_final_stats=1 2>"$log"; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)' "$log" || true
  else
    tail -n 40 "$log" >&2
    failed+=("$t")
    while IFS= read -r a; do artifacts+=("$t: $a"); done < <(
      sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"
    )
  fi
  after=$(find "$corpus" -type f | wc -l)
  printf -- '--- %s: %ss, corpus %s -> %s inputs\n' "$t" "$(($(date +%s) - start))" "$before" "$after"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed in: ${failed[*]} (logs: fuzz/artifacts/<target>.log)" >&2
  for a in "${artifacts[@]}"; do
    echo "  artifact ${a}" >&2
  done
  echo "  reproduce: cargo +nightly fuzz run <target> <artifact>" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
