-- wrk script: POST /v1/purchases with a unique order id per request and customers drawn
-- uniformly from c-0 .. c-(CUSTOMERS-1). Set KEY (storefront key) and CUSTOMERS in the environment.
local key = os.getenv("KEY")
local customers = tonumber(os.getenv("CUSTOMERS") or "1000")
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
end

request = function()
  counter = counter + 1
  local order = string.format("bench-%d-%d-%d", os.time(), thread_id, counter)
  local customer = string.format("c-%d", math.random(0, customers - 1))
  local body = string.format(
    '{"order_id":"%s","customer_id":"%s","amount":%d,"currency":"EUR"}',
    order, customer, math.random(100, 50000))
  return wrk.format("POST", "/v1/purchases",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,"errors_status":%d,"errors_socket":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
