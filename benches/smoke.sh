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
run chat-tls-rate chat "${spawn[@]}" --transport tls --rate 200
run fanout-tls fanout "${spawn[@]}" --transport tls --senders 2
run idle-tcp-workers idle "${spawn[@]}" --transport tcp --workers 2 --sources 2
run idle-quic idle "${spawn[@]}" --transport quic
run storm-tls-workers storm "${spawn[@]}" --transport tls --workers 2
run catchup-quic catchup "${spawn[@]}" --transport quic
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
echo "smoke: all scenarios passed"
