-- wrk script: GET /v1/click2call/async with a new ext and phone on every request (the
-- duplicate-click guard keys on tenant+ext+phone, one live call per ext), counts statuses
-- per code, prints one JSON line "BENCH_JSON {...}" at the end.
-- env: C2C_TOKEN (bearer token), C2C_PATH (default /v1/click2call/async), C2C_BASE (ext offset)
local threads = {}
local token = os.getenv("C2C_TOKEN") or "bench-token"
local path = os.getenv("C2C_PATH") or "/v1/click2call/async"
local base = tonumber(os.getenv("C2C_BASE") or "0")

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   counter = 0
   statuses = {}
   headers = {["Authorization"] = "Bearer " .. token}
end

function request()
   counter = counter + 1
   -- ext: 10 digits, unique per thread and request; phone: unique too
   local n = base + tid * 100000000 + counter
   local p = path .. "?ext=" .. string.format("%010d", n) .. "&phone=09" .. string.format("%010d", n)
   return wrk.format("GET", p, headers)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local codes = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses")
      for code, n in pairs(s) do codes[code] = (codes[code] or 0) + n end
   end
   local parts = {}
   for code, n in pairs(codes) do table.insert(parts, string.format('"%d": %d', code, n)) end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
      '"statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      table.concat(parts, ", ")))
end
