-- wrk script: sends one GraphQL request over and over and reports, on one line, what
-- the harness needs: throughput, latency percentiles and every kind of failure.
--
-- Environment: BENCH_BODY (the JSON body to POST), BENCH_TOKEN (a bearer token; optional).

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json, application/json;q=0.9"
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  graphql_errors = 0
  first_error = ""
end

-- A 2xx response whose body carries GraphQL errors is a failure too.
function response(status, headers, body)
  if status >= 200 and status < 300 and body:find('"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
    if first_error == "" then
      first_error = body:sub(1, 300)
    end
  end
end

function done(summary, latency, requests)
  local errors, sample = 0, ""
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("graphql_errors")
    local first = thread:get("first_error")
    if sample == "" and first ~= nil then
      sample = first
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d graphql_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, errors))
  if sample ~= "" then
    io.write("FIRST_ERROR " .. sample:gsub("\n", " ") .. "\n")
  end
end
