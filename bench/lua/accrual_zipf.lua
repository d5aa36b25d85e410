package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local n, run = 0, os.getenv("RUN_ID") or tostring(os.time())
setup = c.setup
function init() math.randomseed(os.time() * 100 + (thread_id or 0)) end
request = function()
  n = n + 1
  local body = string.format('{"order_id":"z-%s-%d-%d","customer_id":"c-%d","amount":%d,"currency":"EUR"}',
    run, thread_id or 0, n, c.zipf(), math.random(100, 50000))
  return wrk.format("POST", "/v1/purchases", c.headers, body)
end
done = c.done
