package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local n, run = 0, os.getenv("RUN_ID") or tostring(os.time())
setup = c.setup
request = function()
  n = n + 1
  local body = string.format('{"order_id":"hot-%s-%d-%d","customer_id":"c-hot","amount":1999,"currency":"EUR"}',
    run, thread_id or 0, n)
  return wrk.format("POST", "/v1/purchases", c.headers, body)
end
done = c.done
