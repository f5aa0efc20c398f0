-- wrk script for tests/bench/test_http_bench.py: POST a pledge (JSON, a Bearer token) with a
-- unique Idempotency-Key per request ("wrk-<run>-<thread>-<n>"), the tokens taken in turn
-- (many members pledging, not one member's wallet locked by every request).
-- Usage: wrk -s wrk_pledge.lua URL -- RUN TOKEN [TOKEN ...]   (URL ends with /api/v1/pools/<id>/pledges)

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end

function init(args)
  run = args[1]
  tokens = {}
  for i = 2, #args do
    tokens[#tokens + 1] = args[i]
  end
  sent = 0
  body = '{"quantity": 1, "max_unit_price": 100}'
end

function request()
  sent = sent + 1
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[(sent + thread_number) % #tokens + 1],
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Idempotency-Key"] = string.format("wrk-%s-%d-%d", run, thread_number, sent),
  }
  return wrk.format("POST", nil, headers, body)
end
