-- A storefront and app profile: 60% balance reads, 15% activity, 20% purchases, 5% checkout quotes.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local n, run = 0, os.getenv("RUN_ID") or tostring(os.time())
setup = c.setup
function init() math.randomseed(os.time() * 100 + (thread_id or 0)) end
request = function()
  local r, customer = math.random(), c.zipf()
  if r < 0.60 then
    return wrk.format("GET", string.format("/v1/customers/c-%d/balances", customer), c.headers)
  elseif r < 0.75 then
    return wrk.format("GET", string.format("/v1/customers/c-%d/activity?limit=20", customer), c.headers)
  elseif r < 0.95 then
    n = n + 1
    local body = string.format('{"order_id":"m-%s-%d-%d","customer_id":"c-%d","amount":%d,"currency":"EUR"}',
      run, thread_id or 0, n, customer, math.random(100, 50000))
    return wrk.format("POST", "/v1/purchases", c.headers, body)
  end
  return wrk.format("POST", "/v1/checkout/quote", c.headers,
    string.format('{"customer_id":"c-%d","amount":%d}', customer, math.random(100, 50000)))
end
done = c.done
