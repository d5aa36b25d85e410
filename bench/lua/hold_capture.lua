-- Each completed hold is captured by a later request: hold, then capture, under load.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local n, run, held = 0, os.getenv("RUN_ID") or tostring(os.time()), {}
setup = c.setup
function init() math.randomseed(os.time() * 100 + (thread_id or 0)) end
request = function()
  local id = table.remove(held)
  if id then
    return wrk.format("POST", "/v1/redemptions/" .. id .. "/capture", c.headers, "{}")
  end
  n = n + 1
  local body = string.format('{"redemption_id":"h-%s-%d-%d","customer_id":"c-%d","asset":"points","amount":1}',
    run, thread_id or 0, n, c.uniform())
  return wrk.format("POST", "/v1/redemptions", c.headers, body)
end
response = function(status, headers, body)
  if status == 201 then
    local id = body:match('"redemption_id":"([^"]+)"')
    if id then table.insert(held, id) end
  end
end
done = c.done
