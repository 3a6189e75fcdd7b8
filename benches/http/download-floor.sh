#!/usr/bin/env bash
# How close Parley's downloads come to the kernel's best case, and to `cp`, on this machine.
#
#   benches/http/download-floor.sh PARLEY_BIN IMLOAD_BIN [SERVER_CONFIG]
#
# Starts PARLEY_BIN on a fresh data directory in WORK_DIR (loopback, port 0), uploads SIZE_MIB of
# random bytes, then serves the very blob the server stored from two minimal servers as well
# (benches/http/sendfile-server.py: `sendfile` hands the page cache to the socket with
# sendfile(2), no copy through user space; `copy` reads and writes 256 KiB at a time). After one
# untimed download from each, RUNS rounds of: `imload download` from each of the three, and `cp`
# of the blob, every pass after an untimed `sync` with the last pass's output deleted. Prints MB/s
# (10^6 bytes/s) per pass and the medians, and each one's time over cp's. Every download is
# checked by SHA-256. Needs python3, curl, jq, bc, sha256sum.
#
# Settings: SIZE_MIB=512 (1..=8192), RUNS=3 (1..=20), WORK_DIR (default: mktemp -d under /tmp;
# put it on the disk you mean to measure), PORT=18777 (and PORT+1) for the minimal servers.
set -euo pipefail
parley=${1:?usage: download-floor.sh PARLEY_BIN IMLOAD_BIN [SERVER_CONFIG]}
imload=${2:?usage: download-floor.sh PARLEY_BIN IMLOAD_BIN [SERVER_CONFIG]}
config=${3:-}
size_mib=${SIZE_MIB:-512}
runs=${RUNS:-3}
port=${PORT:-18777}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
int_in() { [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || { echo "download-floor: $1=$2 is not in $3..=$4" >&2; exit 1; }; }
int_in SIZE_MIB "$size_mib" 1 8192
int_in RUNS "$runs" 1 20
for tool in python3 curl jq bc sha256sum; do
  command -v "$tool" >/dev/null || { echo "download-floor: $tool is not installed" >&2; exit 1; }
done
if [[ -n ${WORK_DIR:-} ]]; then mkdir -p "$WORK_DIR"; work=$(mktemp -d "$WORK_DIR/floor.XXXXXX"); else work=$(mktemp -d /tmp/parley-floor.XXXXXX); fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/data"
"$parley" ${config:+--config "$config"} --data-dir "$work/data" --tls 127.0.0.1:0 --quic 127.0.0.1:0 \
  --http 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 300); do grep -q '^PARLEY_READY ' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
http=$(grep -o 'http=[^ ,]*' "$work/server.out" | head -1 | cut -d= -f2)
[[ -n $http ]] || { echo "download-floor: the server did not start (see $work/server.log)" >&2; exit 1; }
token=$(curl -sS --max-time 60 "http://$http/im/v1/auth/register" -H 'content-type: application/json' \
  -d '{"account":"floor","password":"download-password","device_id":"floor"}' | jq -er .access_token)
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/source.bin"
sum=$(sha256sum "$work/source.bin" | cut -d' ' -f1)
file_id=$(curl -sS --max-time 600 -H "authorization: Bearer $token" -H 'content-type: application/octet-stream' \
  --data-binary @"$work/source.bin" "http://$http/im/v1/files?name=floor.bin" | jq -er .file_id)
rm -f "$work/source.bin"
blob=$(find "$work/data" -path '*/blobs/*' -name "$sum" -type f | head -1)
[[ -n $blob ]] || { echo "download-floor: no blob $sum in the data directory" >&2; exit 1; }
python3 "$here/sendfile-server.py" "$blob" "$port" sendfile & pids+=($!)
python3 "$here/sendfile-server.py" "$blob" $((port + 1)) copy & pids+=($!)
sleep 0.5

# One download to a fresh file after a sync; prints MB/s.
one() {
  rm -f "$work/out.bin"; sync
  "$imload" download --url "$1" ${2:+--token "$2"} --out "$work/out.bin" --runs 1 --warmup 0 \
    --sha256 "$sum" --json | jq -er 'select(.ok) | .mb_per_s[0]'
}
copy() {
  rm -f "$work/copy.bin"; sync
  local t0 t1; t0=$(date +%s.%N); cp "$blob" "$work/copy.bin"; t1=$(date +%s.%N)
  echo "scale=1; $size_mib * 1048576 / ($t1 - $t0) / 1000000" | bc
}
parley_url="http://$http/im/v1/files/$file_id"
one "http://127.0.0.1:$port/x" >/dev/null; one "http://127.0.0.1:$((port + 1))/x" >/dev/null
one "$parley_url" "$token" >/dev/null; copy >/dev/null
declare -a s_f c_f p_f cp_f
for ((i = 1; i <= runs; i++)); do
  s_f+=("$(one "http://127.0.0.1:$port/x")")
  c_f+=("$(one "http://127.0.0.1:$((port + 1))/x")")
  p_f+=("$(one "$parley_url" "$token")")
  cp_f+=("$(copy)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpm=$(median "${cp_f[@]}")
line() {
  local name=$1; shift; local m; m=$(median "$@")
  printf '%-40s median %8s MB/s  [%s]  time over cp: %s\n' "$name" "$m" "$*" "$(echo "scale=2; $cpm / $m" | bc)"
}
echo "--- download floor: $size_mib MiB blob, $runs rounds, imload download to a file, sync before each pass"
line "sendfile(2) server (kernel's best case)" "${s_f[@]}"
line "read/write server (256 KiB)" "${c_f[@]}"
line "Parley (GET /im/v1/files/{id})" "${p_f[@]}"
printf '%-40s median %8s MB/s  [%s]\n' "cp of the blob (same disk)" "$cpm" "${cp_f[*]}"
