#!/usr/bin/env bash
# REST durable sends under load, with wrk and keep-alive connections.
#
#   benches/http/rest-send.sh BASE_URL
#
# BASE_URL is the server's public HTTP address (`listen.http`), e.g. http://127.0.0.1:7480. The
# script starts no server. It registers USERS accounts through the REST API (argon2: slow on
# purpose, a few seconds), opens USERS/2 1:1 conversations (user 2i with user 2i+1), then runs
# wrk for DURATION with CONNECTIONS keep-alive connections, each request a POST
# /im/v1/conversations/{id}/messages with its own client_msg_id (so none is deduplicated),
# round-robin over every user and conversation. It prints requests/s, sends/s and latency, and
# fails (exit 3, with a loud line) if any answer was not 201 Created or wrk saw socket errors.
#
# Settings (environment):
#   USERS=64          accounts (even, 2..=2000)
#   CONNECTIONS=256   wrk connections (1..=4000); one request in flight on each
#   THREADS=2         wrk threads
#   DURATION=10s      wrk's -d (at most 300 s)
#   PAYLOAD=64        bytes of text per message (1..=4096)
#   TIMEOUT=10s       wrk's per-request timeout
#   SETUP_PARALLEL=2  registrations in flight during setup (the server hashes 2 per address)
# Needs curl, jq and wrk (Debian: apt-get install -y wrk jq curl).
set -euo pipefail

base=${1:?usage: rest-send.sh BASE_URL (e.g. http://127.0.0.1:7480)}
base=${base%/}
users=${USERS:-64}
connections=${CONNECTIONS:-256}
threads=${THREADS:-2}
duration=${DURATION:-10s}
payload=${PAYLOAD:-64}
timeout=${TIMEOUT:-10s}
parallel=${SETUP_PARALLEL:-2}
here=$(cd "$(dirname "$0")" && pwd)

for tool in curl jq wrk; do
  command -v "$tool" >/dev/null || { echo "rest-send: $tool is not installed" >&2; exit 1; }
done
int_in() { [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || { echo "rest-send: $1=$2 is not in $3..=$4" >&2; exit 1; }; }
int_in USERS "$users" 2 2000
((users % 2 == 0)) || { echo "rest-send: USERS must be even" >&2; exit 1; }
int_in CONNECTIONS "$connections" 1 4000
int_in THREADS "$threads" 1 64
int_in PAYLOAD "$payload" 1 4096
[[ $duration =~ ^([0-9]+)(s|m)?$ ]] || { echo "rest-send: DURATION=$duration: give seconds (30s) or minutes (2m)" >&2; exit 1; }
secs=${BASH_REMATCH[1]}; [[ ${BASH_REMATCH[2]} == m ]] && secs=$((secs * 60))
int_in DURATION-seconds "$secs" 1 300
((connections >= threads)) || threads=$connections

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$(printf '%08x' $((RANDOM * 32768 + RANDOM)))

# One account: prints "user_id access_token", or fails with the server's answer.
# The server hashes at most two passwords of one address at a time and refuses more with 429
# and a retry time: wait it out, as a client should (at most 600 tries).
register() {
  local i=$1 out tries=0
  while :; do
    out=$(curl -sS --max-time 60 -w '\n%{http_code}' "$base/im/v1/auth/register" \
      -H 'content-type: application/json' \
      -d "{\"account\":\"rs${run}u$i\",\"password\":\"rest-send-password\",\"device_id\":\"wrk\",\"platform\":\"web\"}")
    [[ ${out##*$'\n'} == 429 && $((tries += 1)) -lt 600 ]] || break
    sleep "$(printf '%s\n' "${out%$'\n'*}" | jq -r '(.error.retry_after_ms // 100) / 1000')"
  done
  if [[ ${out##*$'\n'} != 201 ]]; then
    echo "rest-send: registering user $i failed: ${out//$'\n'/ }" >&2
    return 1
  fi
  printf '%s\n' "${out%$'\n'*}" | jq -r '"\(.user_id) \(.access_token)"'
}
export -f register
export base run

echo "rest-send: registering $users users at $base (run $run)"
t0=$(date +%s.%N)
seq 0 $((users - 1)) | xargs -P "$parallel" -I{} bash -c 'register {} > "$0/user-{}"' "$work"
for i in $(seq 0 $((users - 1))); do cat "$work/user-$i"; done >"$work/users"
[[ $(wc -l <"$work/users") == "$users" ]] || { echo "rest-send: registration incomplete" >&2; exit 1; }
t1=$(date +%s.%N)
echo "rest-send: registered in $(echo "$t1 - $t0" | bc) s; opening $((users / 2)) conversations"

mapfile -t ids < <(cut -d' ' -f1 "$work/users")
mapfile -t tokens < <(cut -d' ' -f2 "$work/users")
: >"$work/senders"
for ((i = 0; i < users; i += 2)); do
  out=$(curl -sS --max-time 30 -w '\n%{http_code}' "$base/im/v1/conversations/direct" \
    -H "authorization: Bearer ${tokens[i]}" -H 'content-type: application/json' \
    -d "{\"user_id\":\"${ids[i + 1]}\"}")
  code=${out##*$'\n'}
  if [[ $code != 200 && $code != 201 ]]; then
    echo "rest-send: opening a conversation failed: ${out//$'\n'/ }" >&2
    exit 1
  fi
  conv=$(printf '%s\n' "${out%$'\n'*}" | jq -r .conversation_id)
  printf '%s %s\n%s %s\n' "${tokens[i]}" "$conv" "${tokens[i + 1]}" "$conv" >>"$work/senders"
done

# One send by hand first: a setup problem shows its answer here, not as wrk's error count.
first=$(head -1 "$work/senders")
out=$(curl -sS --max-time 30 -w '\n%{http_code}' "$base/im/v1/conversations/${first#* }/messages" \
  -H "authorization: Bearer ${first%% *}" -H 'content-type: application/json' \
  -d "{\"client_msg_id\":\"$run-probe\",\"content\":\"probe\"}")
[[ ${out##*$'\n'} == 201 ]] || { echo "rest-send: a probe send failed: ${out//$'\n'/ }" >&2; exit 1; }

echo "rest-send: wrk -t$threads -c$connections -d${secs}s, $payload-byte texts, $users senders in $((users / 2)) conversations"
timeout $((secs + 60)) wrk -t"$threads" -c"$connections" -d"${secs}s" --timeout "$timeout" \
  -s "$here/rest-send.lua" "$base" -- "$work/senders" "$run" "$payload" | tee "$work/wrk.out"
if grep -q '^!!! ' "$work/wrk.out"; then
  exit 3
fi
grep -q '^ok: ' "$work/wrk.out" || { echo "rest-send: wrk printed no verdict" >&2; exit 3; }
