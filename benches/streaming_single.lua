-- wrk script of benches/streaming.sh's one-event-per-request phase: each
-- request posts one commission event with an event_id of its own (the same
-- fixed row as benches/streaming.py's `commission`: 10.00 of gross
-- commission), and the events the server answered "accepted" are counted.
-- A Python client spends more CPU per request than the server does; wrk
-- leaves the two cores to the server.
--
--   wrk -t2 -c32 -d15s -s benches/streaming_single.lua URL -- API_KEY

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  key = args[1]
  n = 0
  accepted = 0
  refused = 0
end

local template = '{"event_id":"s-single-%d-%d","type":"commission.upserted","occurred_at":"2026-06-10T12:00:00Z",'
  .. '"data":{"commission_id":"S-single-%d-%d","policy_id":"STREAM-P","agent_id":"STREAM-A",'
  .. '"carrier_id":"STREAM-C","transaction_date":"2026-06-10","kind":"new","premium_amount":"100.00",'
  .. '"commission_rate":"0.10","gross_commission":"10.00","agent_commission":"4.00","agency_commission":"6.00"}}'

function request()
  n = n + 1
  local body = string.format(template, tid, n, tid, n)
  return wrk.format("POST", "/ingest/events", { ["X-API-Key"] = key, ["Content-Type"] = "application/x-ndjson" }, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted":1', 1, true) then
    accepted = accepted + 1
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local a, r = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    r = r + t:get("refused")
  end
  io.write(string.format("accepted %d refused %d\n", a, r))
end
