#!/usr/bin/env bash
# The headline figures of docs/BENCHMARKS.md for two builds, interleaved, ROUNDS rounds:
#
#   benches/headline.sh PREV_DIR NEW_DIR OUT_DIR
#
# PREV_DIR and NEW_DIR each hold a release `parley` and `imload`
# (`cargo build --release -p parley-server --bin parley -p parley-benches --bin imload`);
# NEW_DIR's imload drives both servers, so only the server differs. Every server is spawned by
# imload on a fresh temporary data directory, search off (`[search] enabled = false`), as in
# every earlier round. Per round and build, one run of each:
#
#   C   chat --transport tcp --pairs 500 --rate 2000 --duration 20   (everyday load)
#   A   chat --transport tcp --pairs 500 --window 32 --duration 10   (1:1 saturation, TCP)
#   B   chat --transport tls --pairs 500 --window 32 --duration 10   (1:1 saturation, TLS)
#   G   fanout --members 1000 --senders 10 --window 8 --duration 10  (group fan-out)
#   I   idle --connections 2000                                      (idle memory)
#
# plus `imload fsync-probe` at the start and the end. Each run's JSON goes to
# OUT_DIR/<figure>-<build>-<round>.json; benches/headline-summary.py OUT_DIR prints the medians.
# Settings: ROUNDS=3, FIGURES="C A B G I". Run it with nothing else on the machine.
set -euo pipefail
prev=${1:?usage: headline.sh PREV_DIR NEW_DIR OUT_DIR}
new=${2:?usage: headline.sh PREV_DIR NEW_DIR OUT_DIR}
out=${3:?usage: headline.sh PREV_DIR NEW_DIR OUT_DIR}
rounds=${ROUNDS:-3}
figures=${FIGURES:-C A B G I}
mkdir -p "$out"
imload="$new/imload"
conf="$out/nosearch.toml"
printf '[search]\nenabled = false\n' >"$conf"

args() {
  case $1 in
    C) echo "chat --transport tcp --pairs 500 --rate 2000 --duration 20" ;;
    A) echo "chat --transport tcp --pairs 500 --window 32 --duration 10" ;;
    B) echo "chat --transport tls --pairs 500 --window 32 --duration 10" ;;
    G) echo "fanout --members 1000 --senders 10 --window 8 --duration 10" ;;
    I) echo "idle --connections 2000" ;;
    *) echo "headline: unknown figure $1" >&2; exit 1 ;;
  esac
}

probe() {
  mkdir -p "$out/probe-dir"
  "$imload" fsync-probe --dir "$out/probe-dir" --count 2000 --json >"$out/probe-$1.json"
  rm -rf "$out/probe-dir"
}

probe start
for r in $(seq "$rounds"); do
  for f in $figures; do
    for b in prev new; do
      dir=$prev; [[ $b == new ]] && dir=$new
      # shellcheck disable=SC2046
      "$imload" $(args "$f") --spawn-server --server-bin "$dir/parley" --server-config "$conf" \
        --json >"$out/$f-$b-$r.json" 2>"$out/$f-$b-$r.log" || echo "headline: $f $b round $r failed" >&2
      echo "$(date -u +%H:%M:%S) $f $b round $r done"
    done
  done
done
probe end
python3 "$(dirname "$0")/headline-summary.py" "$out"
