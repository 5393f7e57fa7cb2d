-- GETs the calls the driver seeded (BENCH_IDS: a file with one call id a line), round robin.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local common = require("common")

setup = common.setup

local ids = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do
    ids[#ids + 1] = line
  end
  i = math.random(1, #ids)
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "dev-api-token")
end

function request()
  i = i % #ids + 1
  return wrk.format("GET", "/api/v1/vapi/calls/" .. ids[i])
end

function done(summary, latency, requests)
  common.report(summary, latency, requests)
end
