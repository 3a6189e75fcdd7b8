#!/usr/bin/env bash
# File download throughput over HTTP against copying the same bytes on the same disk.
#
#   benches/http/download.sh BASE_URL [SERVER_DATA_DIR]
#
# BASE_URL is the server's public HTTP address (e.g. http://127.0.0.1:7480). The script starts
# no server. It registers one account, makes a SIZE_MIB file of random bytes in WORK_DIR (by
# default a directory under /tmp; put it on the disk of the server's data directory), uploads it
# (raw body), then, after one warm-up pass of each, RUNS times:
#   curl GET -> /dev/null        against  dd of the file -> /dev/null (bs=1M)
#   curl GET -> a file in WORK_DIR  against  cp of the file -> WORK_DIR
#   imload download -> a file in WORK_DIR (when imload is found: see IMLOAD below)
# and prints MB/s (10^6 bytes per second) of each, with the ratios. Every download is checked
# (HTTP 200 and the full size; the copy written by curl also by its SHA-256). Nothing is dropped
# from the page cache; the output says how much of each file is cached (fincore) before the
# timed passes. With SERVER_DATA_DIR the local copy/read figures use the blob the server serves
# (<data dir>/files/blobs/..), otherwise the uploaded source file (same bytes).
#
# Settings (environment):
#   SIZE_MIB=512    file size (1..=8192)
#   RUNS=3          timed passes of each (1..=20)
#   WORK_DIR=       where the source file and the copies go (default: mktemp -d under /tmp)
#   IMLOAD=         the imload binary (default: `imload` on PATH, else target/release/imload
#                   beside this script's repository; none found: its line is left out)
#
# Why two clients: curl writes what it receives through stdio in 4-16 KiB pieces, which holds it
# near the speed of `curl file:///` copying a local file whatever the server does; `imload
# download` reads into 1 MiB and writes each read whole (benches/src/scenario/download.rs), so
# its figure is the server's. Both are printed.
# Needs curl, jq, dd, sha256sum; fincore (util-linux) for the cache line.
set -euo pipefail

base=${1:?usage: download.sh BASE_URL [SERVER_DATA_DIR]}
base=${base%/}
data_dir=${2:-}
size_mib=${SIZE_MIB:-512}
runs=${RUNS:-3}
for tool in curl jq dd sha256sum bc; do
  command -v "$tool" >/dev/null || { echo "download: $tool is not installed" >&2; exit 1; }
done
int_in() { [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || { echo "download: $1=$2 is not in $3..=$4" >&2; exit 1; }; }
int_in SIZE_MIB "$size_mib" 1 8192
int_in RUNS "$runs" 1 20
if [[ -n ${WORK_DIR:-} ]]; then
  mkdir -p "$WORK_DIR"
  work=$(mktemp -d "$WORK_DIR/download.XXXXXX")
else
  work=$(mktemp -d /tmp/parley-download.XXXXXX)
fi
trap 'rm -rf "$work"' EXIT
bytes=$((size_mib * 1024 * 1024))
# Every transfer gets this long at most (a 10 MB/s floor, and at least a minute).
max_time=$((bytes / 10000000 + 60))
mbps() { echo "scale=1; $1 / $2 / 1000000" | bc; }
now() { date +%s.%N; }
cached() {
  if command -v fincore >/dev/null; then
    fincore -b -n -o RES,SIZE "$1" | awk '{ printf "%d of %d bytes in the page cache (%.0f %%)", $1, $2, ($2 ? 100 * $1 / $2 : 0) }'
  else
    printf 'unknown (no fincore)'
  fi
}

run=$(printf '%08x' $((RANDOM * 32768 + RANDOM)))
out=$(curl -sS --max-time 60 -w '\n%{http_code}' "$base/im/v1/auth/register" \
  -H 'content-type: application/json' \
  -d "{\"account\":\"dl${run}\",\"password\":\"download-password\",\"device_id\":\"curl\"}")
[[ ${out##*$'\n'} == 201 ]] || { echo "download: register failed: ${out//$'\n'/ }" >&2; exit 1; }
token=$(printf '%s\n' "${out%$'\n'*}" | jq -r .access_token)
auth="authorization: Bearer $token"

src=$work/source.bin
echo "download: writing $size_mib MiB of random bytes to $src"
head -c "$bytes" /dev/urandom >"$src"
sum=$(sha256sum "$src" | cut -d' ' -f1)

t0=$(now)
out=$(curl -sS --max-time "$max_time" -w '\n%{http_code}' -H "$auth" \
  -H 'content-type: application/octet-stream' --data-binary @"$src" \
  "$base/im/v1/files?name=download-bench.bin")
t1=$(now)
[[ ${out##*$'\n'} == 201 ]] || { echo "download: upload failed: ${out//$'\n'/ }" >&2; exit 1; }
meta=${out%$'\n'*}
file_id=$(jq -r .file_id <<<"$meta")
[[ $(jq -r .sha256 <<<"$meta") == "$sum" ]] || { echo "download: the server's sha256 differs from the file's" >&2; exit 1; }
echo "download: uploaded as $file_id in $(echo "$t1 - $t0" | bc) s ($(mbps "$bytes" "$(echo "$t1 - $t0" | bc)") MB/s)"

local_file=$src
if [[ -n $data_dir ]]; then
  blob=$(find "$data_dir" -path "*/blobs/*" -name "$sum" -type f | head -1)
  [[ -n $blob ]] || { echo "download: no blob $sum under $data_dir" >&2; exit 1; }
  local_file=$blob
fi
url="$base/im/v1/files/$file_id"

# curl to SINK; prints seconds, after checking the status and size.
fetch() {
  local sink=$1 w code size secs
  w=$(curl -sS --max-time "$max_time" -H "$auth" -o "$sink" -w '%{http_code} %{size_download} %{time_total}' "$url")
  read -r code size secs <<<"$w"
  [[ $code == 200 && $size == "$bytes" ]] || { echo "download: GET answered $code with $size bytes" >&2; exit 1; }
  echo "$secs"
}
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc; }
dd_read() { dd if="$local_file" of=/dev/null bs=1M status=none; }
cp_copy() { cp "$local_file" "$work/copied.bin"; }
imload=${IMLOAD:-$(command -v imload || true)}
if [[ -z $imload ]]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  [[ -x $here/target/release/imload ]] && imload=$here/target/release/imload
fi
# imload download to a file; prints seconds (it checks the status, the size and the SHA-256).
imload_fetch() {
  "$imload" download --url "$url" --token "$token" --out "$work/imload.bin" --runs 1 \
    --warmup "$1" --sha256 "$sum" --json | jq -er 'select(.ok) | .seconds[0]'
}

echo "download: warm-up (one pass of each, untimed)"
fetch /dev/null >/dev/null
fetch "$work/downloaded.bin" >/dev/null
[[ $(sha256sum "$work/downloaded.bin" | cut -d' ' -f1) == "$sum" ]] || { echo "download: downloaded bytes differ" >&2; exit 1; }
dd_read
cp_copy
if [[ -n $imload ]]; then
  imload_fetch 1 >/dev/null || { echo "download: imload download failed" >&2; exit 1; }
else
  echo "download: no imload binary found (set IMLOAD): its line is left out"
fi
echo "download: served file $local_file: $(cached "$local_file")"
[[ -n $data_dir ]] && echo "download: source file $src: $(cached "$src")"

declare -a g_null g_file d_null c_file i_file
# Every timed pass starts after an untimed `sync` with the last pass's output deleted, so no pass
# pays for the write-back of the one before it (without it the figures swing by a third).
for ((i = 1; i <= runs; i++)); do
  if [[ -n $imload ]]; then
    rm -f "$work/imload.bin"; sync
    i_file+=("$(imload_fetch 0)") || { echo "download: imload download failed" >&2; exit 1; }
  fi
  sync
  g_null+=("$(fetch /dev/null)")
  rm -f "$work/downloaded.bin"; sync
  g_file+=("$(fetch "$work/downloaded.bin")")
  sync
  d_null+=("$(timed dd_read)")
  rm -f "$work/copied.bin"; sync
  c_file+=("$(timed cp_copy)")
done
[[ $(sha256sum "$work/downloaded.bin" | cut -d' ' -f1) == "$sum" ]] || { echo "download: downloaded bytes differ" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
line() {
  local name=$1; shift
  local list="" s
  for s in "$@"; do list+="$(mbps "$bytes" "$s") "; done
  printf '%-38s median %8s MB/s   [%s]\n' "$name" "$(mbps "$bytes" "$(median "$@")")" "${list% }"
}
echo "--- download summary: $size_mib MiB, $runs runs each, MB/s = 10^6 bytes/s"
line "curl GET -> /dev/null" "${g_null[@]}"
line "dd (bs=1M) -> /dev/null" "${d_null[@]}"
line "curl GET -> file (same disk)" "${g_file[@]}"
line "cp -> file (same disk)" "${c_file[@]}"
[[ -n $imload ]] && line "imload download -> file (same disk)" "${i_file[@]}"
echo "time ratio, curl to /dev/null over dd to /dev/null: $(echo "scale=2; $(median "${g_null[@]}") / $(median "${d_null[@]}")" | bc)"
echo "time ratio, curl to a file over cp to a file:       $(echo "scale=2; $(median "${g_file[@]}") / $(median "${c_file[@]}")" | bc)"
[[ -n $imload ]] && echo "time ratio, imload to a file over cp to a file:     $(echo "scale=2; $(median "${i_file[@]}") / $(median "${c_file[@]}")" | bc)"
echo "(the issue's goal: within 2x, i.e. a ratio of at most 2)"
echo "download: served file after the runs: $(cached "$local_file")"
