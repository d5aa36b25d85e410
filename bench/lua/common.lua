-- Shared by the wrk scenarios: thread ids, a Zipf sampler, headers, and a JSON summary in done().
local M = {}
M.key = os.getenv("KEY")
M.customers = tonumber(os.getenv("CUSTOMERS") or "1000")
M.headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. (M.key or "")}

local cdf = nil
-- Customer index drawn from a Zipf law (s = 1.1): a few customers buy very often, most rarely.
function M.zipf()
  if not cdf then
    cdf = {}
    local total = 0
    for k = 1, M.customers do total = total + 1 / (k ^ 1.1); cdf[k] = total end
    for k = 1, M.customers do cdf[k] = cdf[k] / total end
  end
  local u = math.random()
  local lo, hi = 1, M.customers
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo - 1
end

function M.uniform() return math.random(0, M.customers - 1) end

function M.done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,' ..
    '"non_2xx":%d,"socket_errors":%d,' ..
    '"socket_errors_by_kind":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.errors.status, errors,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end

local thread_counter = 0
function M.setup(thread)
  thread:set("thread_id", thread_counter)
  thread_counter = thread_counter + 1
end

return M
