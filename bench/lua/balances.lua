package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
setup = c.setup
function init() math.randomseed(os.time() * 100 + (thread_id or 0)) end
request = function()
  return wrk.format("GET", string.format("/v1/customers/c-%d/balances", c.uniform()), c.headers)
end
done = c.done
