#!/usr/bin/env bash
# Smoke run of every load-generator scenario against a freshly spawned server (debug builds).
# Tiny sizes, about two seconds each; timings are meaningless and not asserted. Fails if a
# scenario reports lost or duplicated messages, errors, or cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

# One build of the whole workspace with every target: the same features as `cargo test
# --workspace`, so after the tests nothing but the bench targets compiles. Building each package
# on its own resolves other features (serde, mio, syn, ...) and recompiled much of the tree
# twice: 4 of CI's 20 minutes.
cargo build -q --workspace --all-targets

target_dir=${CARGO_TARGET_DIR:-target}
imload=$target_dir/debug/imload
server=$target_dir/debug/parley
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() {
  local name=$1
  shift
  echo "== imload $*"
  if ! "$imload" "$@" --smoke --json >"$out/$name.json"; then
    echo "smoke: '$*' failed:" >&2
    cat "$out/$name.json" >&2 || true
    exit 1
  fi
  # imload exits non-zero when "ok" is false; check the JSON too, in case that ever changes.
  if ! grep -q '"ok":true' "$out/$name.json"; then
    echo "smoke: '$*' reported problems:" >&2
    cat "$out/$name.json" >&2
    exit 1
  fi
}

spawn=(--spawn-server --server-bin "$server")
run chat-tcp chat "${spawn[@]}" --transport tcp
run chat-ws chat "${spawn[@]}" --transport ws
run chat-tls-rate chat "${spawn[@]}" --transport tls --rate 200
run fanout-tls fanout "${spawn[@]}" --transport tls --senders 2
run idle-tcp-workers idle "${spawn[@]}" --transport tcp --workers 2 --sources 2
run idle-quic idle "${spawn[@]}" --transport quic
run idle-ws-workers idle "${spawn[@]}" --transport ws --workers 2 --sources 2
run storm-tls-workers storm "${spawn[@]}" --transport tls --workers 2
run storm-ws storm "${spawn[@]}" --transport ws
run catchup-quic catchup "${spawn[@]}" --transport quic
run grow-tcp grow "${spawn[@]}" --transport tcp
run convlist-tls convlist "${spawn[@]}" --transport tls --direct 4
run search-tcp search "${spawn[@]}" --transport tcp
# --server-config reaches the spawned server: without search the run reports the fill only.
printf '[search]\nenabled = false\n' >"$out/no-search.toml"
run search-off-tcp search "${spawn[@]}" --transport tcp --server-config "$out/no-search.toml"
if ! grep -q '"search_enabled":false' "$out/search-off-tcp.json"; then
  echo "smoke: the server given --server-config with search off still searched" >&2
  exit 1
fi
run fsync-probe fsync-probe --dir "$out"
run floor floor --dir "$out"

# The HTTP scripts (benches/http/) against a server started here: tiny sizes, a 1 s wrk run.
# They fail on any non-2xx answer or a corrupted download.
if command -v wrk >/dev/null && command -v jq >/dev/null && command -v curl >/dev/null; then
  mkdir -p "$out/http-server"
  "$server" --data-dir "$out/http-server" --tls 127.0.0.1:0 --quic 127.0.0.1:0 \
    --http 127.0.0.1:0 >"$out/http-server.out" 2>"$out/http-server.log" &
  http_pid=$!
  trap 'kill "$http_pid" 2>/dev/null || true; rm -rf "$out"' EXIT
  for _ in $(seq 600); do
    grep -q '^PARLEY_READY ' "$out/http-server.out" 2>/dev/null && break
    kill -0 "$http_pid" 2>/dev/null || { cat "$out/http-server.log" >&2; exit 1; }
    sleep 0.1
  done
  http=$(grep -o 'http=[^ ,]*' "$out/http-server.out" | head -1 | cut -d= -f2)
  [[ -n $http ]] || { echo "smoke: the HTTP server did not start" >&2; exit 1; }
  echo "== benches/http/rest-send.sh http://$http"
  USERS=4 CONNECTIONS=4 THREADS=1 DURATION=1s bash benches/http/rest-send.sh "http://$http"
  echo "== benches/http/download.sh http://$http"
  IMLOAD="$imload" SIZE_MIB=4 RUNS=1 WORK_DIR="$out" bash benches/http/download.sh "http://$http" "$out/http-server"
  kill "$http_pid"
  wait "$http_pid" || true
else
  echo "smoke: wrk, jq or curl not installed: benches/http/ NOT exercised (apt-get install -y wrk jq curl)" >&2
fi
echo "smoke: all scenarios passed"
