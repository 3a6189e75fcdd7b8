-- wrk script for benches/http/rest-send.sh: durable 1:1 sends over the REST API
-- (POST /im/v1/conversations/{id}/messages), spread over many users and conversations, each
-- request with its own client_msg_id so the server deduplicates none of them.
--
-- wrk -s rest-send.lua URL -- SENDERS_FILE RUN_TAG PAYLOAD_BYTES
--   SENDERS_FILE: one "access_token conversation_id" per line (a user and a conversation of
--                 theirs); requests go round-robin over the lines, each thread from its own
--                 starting line.
--   RUN_TAG:      makes the client_msg_ids of this run unique (a-z0-9, at most 16 characters).
--   PAYLOAD_BYTES: text content length (default 64).
--
-- Every answer is checked: 201 is a new durable message; 200 a deduplicated one (counted, never
-- expected); anything else an error. The summary prints those counts and a verdict line.

local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local senders = {}
local tag = "run"
local content = ""
local counter = 0
local cursor = 0
created = 0
duplicates = 0
failed = 0
first_failure = ""

function init(args)
  local file = args[1]
  tag = args[2] or "run"
  local payload = tonumber(args[3] or "64")
  if file == nil then
    error("rest-send.lua: give the senders file after --")
  end
  for line in io.lines(file) do
    local token, conv = line:match("^(%S+)%s+(%d+)$")
    if token then
      table.insert(senders, { path = "/im/v1/conversations/" .. conv .. "/messages",
                              auth = "Bearer " .. token })
    end
  end
  if #senders == 0 then
    error("rest-send.lua: no senders in " .. file)
  end
  content = string.rep("x", payload)
  -- thread_no is set by setup() before init() runs in the thread's state.
  cursor = ((thread_no or 1) * 7919) % #senders
end

function request()
  counter = counter + 1
  cursor = cursor % #senders + 1
  local s = senders[cursor]
  local body = '{"client_msg_id":"' .. tag .. "-" .. (thread_no or 0) .. "-" .. counter ..
      '","content":"' .. content .. '"}'
  return wrk.format("POST", s.path,
    { ["Content-Type"] = "application/json", ["Authorization"] = s.auth }, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 200 then
    duplicates = duplicates + 1
  else
    failed = failed + 1
    if first_failure == "" then
      first_failure = status .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local c, d, f, first = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + (t:get("created") or 0)
    d = d + (t:get("duplicates") or 0)
    f = f + (t:get("failed") or 0)
    local ff = t:get("first_failure")
    if first == "" and ff and ff ~= "" then first = ff end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write("--- rest-send summary\n")
  io.write(string.format("requests: %d in %.2f s = %.0f requests/s; created (201): %d = %.0f sends/s\n",
    summary.requests, secs, summary.requests / secs, c, c / secs))
  io.write(string.format("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (mean %.2f)\n",
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3, latency.mean / 1e3))
  io.write(string.format("duplicates (200): %d; failed (non-2xx): %d; socket errors: connect %d read %d write %d timeout %d\n",
    d, f, e.connect, e.read, e.write, e.timeout))
  if f > 0 or d > 0 or socket_errors > 0 then
    io.write("!!! REST-SEND RUN HAD ERRORS: the figures above are not valid")
    if first ~= "" then io.write(" (first failure: " .. first .. ")") end
    io.write(" !!!\n")
  else
    io.write("ok: every request answered 201 Created\n")
  end
end
