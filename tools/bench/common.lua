-- Shared by the wrk scripts: prints one JSON line of figures when the run ends, for http_bench.py.
local M = {}

-- wrk's setup(): numbers the threads, so that each one's `id` keeps its call ids apart.
local threads = 0
function M.setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function M.report(summary, latency, requests)
  local non2xx = summary.errors.status
  local socket = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, non2xx, socket,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

return M
