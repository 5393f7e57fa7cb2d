-- POSTs Vapi's end-of-call-report fixture (fixtures/vapi) with the local runner's development secret.
-- BENCH_MODE=new: a call id no one has seen, each request (every one sets off the whole chain);
-- BENCH_MODE=same: one call again and again (the duplicate path).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local common = require("common")

setup = common.setup

local body_template
local mode = os.getenv("BENCH_MODE") or "new"
local secret = os.getenv("BENCH_SECRET") or "dev-webhook-secret"
-- The sample's call id as a Lua pattern ("-" is magic in patterns).
local SAMPLE_ID = ("5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34"):gsub("%-", "%%-")
local counter = 0
local prefix

local function replace_id(call_id)
  local body, n = body_template:gsub(SAMPLE_ID, call_id)
  assert(n > 0, "the sample has no call id to replace")
  return body
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_SAMPLE"), "rb"))
  body_template = f:read("*a")
  f:close()
  -- One prefix per wrk thread and run, so that no two requests share an id.
  prefix = string.format("bench-%s-%d-%d", os.getenv("BENCH_RUN") or "0", math.random(1, 1e9), id or 0)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Vapi-Secret"] = secret
  if mode == "same" then
    wrk.body = replace_id(prefix .. "-same")
  end
end

function request()
  if mode == "same" then
    return wrk.format(nil, "/api/v1/vapi/webhook")
  end
  counter = counter + 1
  local body = replace_id(prefix .. "-" .. counter)
  return wrk.format(nil, "/api/v1/vapi/webhook", nil, body)
end

function done(summary, latency, requests)
  common.report(summary, latency, requests)
end
