-- wrk script: POST /api/2.0/mlflow/runs/log-batch with 1000 metrics per request
-- (MLflow's per-request limit).
--
--   wrk -t2 -c8 -d10s --latency -s log_batch.lua http://HOST:PORT -- RUN_ID
--
-- Metric i of request n of thread t has key "b<t>_<i % 5>" and step
-- n * 1000 + i: every (key, step) is new, so nothing dedups. Metrics per
-- second = requests per second * 1000.

local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local METRICS_PER_REQUEST = 1000
local KEYS = 5
local path = "/api/2.0/mlflow/runs/log-batch"
local headers = { ["Content-Type"] = "application/json" }
local run_id, ts
local keys = {}
local counter = 0

function init(args)
  run_id = args[1]
  ts = tostring(os.time()) .. "000"
  for k = 0, KEYS - 1 do
    keys[k] = "b" .. thread_id .. "_" .. k
  end
  math.randomseed(os.time() + thread_id)
end

function request()
  counter = counter + 1
  local base = counter * METRICS_PER_REQUEST
  local parts = {}
  for i = 0, METRICS_PER_REQUEST - 1 do
    parts[i + 1] = string.format(
      '{"key":"%s","value":%.6f,"timestamp":%s,"step":%d}',
      keys[i % KEYS], math.random(), ts, base + i)
  end
  local body = '{"run_id":"' .. run_id .. '","metrics":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", path, headers, body)
end
