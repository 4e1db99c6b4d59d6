-- wrk script: POST /api/2.0/mlflow/runs/log-metric, one metric per request.
--
--   wrk -t2 -c8 -d10s --latency -s log_metric.lua http://HOST:PORT -- RUN_ID [AUTHORIZATION]
--
-- The optional second argument is sent as the Authorization header (e.g.
-- "Bearer sxt_..."), for servers started with --auth.
--
-- Every request carries a new (key, step): key "m<thread>" and a per-thread
-- step counter, so no point is a duplicate of an earlier one and nothing can
-- be deduplicated or overwritten by the server.

local next_thread_id = 0

-- Runs once per wrk thread, in the main Lua state: hand each thread its id.
function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local path = "/api/2.0/mlflow/runs/log-metric"
local headers = { ["Content-Type"] = "application/json" }
local run_id, key, ts
local step = 0

-- Runs once per thread, in the thread's own Lua state.
function init(args)
  run_id = args[1]
  if args[2] then
    headers["Authorization"] = args[2]
  end
  key = "m" .. thread_id
  ts = tostring(os.time()) .. "000" -- epoch ms as a string (no float formatting)
  math.randomseed(os.time() + thread_id)
end

function request()
  step = step + 1
  local body = string.format(
    '{"run_id":"%s","key":"%s","value":%.6f,"timestamp":%s,"step":%d}',
    run_id, key, math.random(), ts, step)
  return wrk.format("POST", path, headers, body)
end
