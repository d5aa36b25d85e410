package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
setup = c.setup
request = function() return wrk.format("GET", "/") end
done = c.done
