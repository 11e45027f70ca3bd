-- wrk script for bench/booking.py: every request books a distinct video appointment.
-- The body template (argument 1) carries __ID__ where the appointment's own identifier goes.
local template
local prefix
local authorization
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  template = f:read("*a")
  f:close()
  prefix = args[2] .. "-" .. tid .. "-"
  authorization = "Bearer " .. args[3]
end

function request()
  counter = counter + 1
  local body = template:gsub("__ID__", prefix .. counter)
  return wrk.format("POST", "/fhir/Appointment",
    {["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json",
     ["Authorization"] = authorization}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
