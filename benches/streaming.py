"""Load driver of benches/streaming.sh: clients posting events to one cip
server on loopback for a fixed time (NDJSON batches, then one event per
request), a prober measuring acknowledgement → visibility in GraphQL, and
RSS samples of the server. Bounded in time and to 127.0.0.1."""

import argparse
import asyncio
import collections
import datetime
import json
import statistics
import sys
import time

import aiohttp

from guard_load import rss_kib  # the same RSS sampler as the guard bench

MARK = "STREAM-MARK"


def commission(phase, client, n):
    # A fixed, exact row: every event adds 10.00 of gross commission.
    return json.dumps({
        "event_id": f"s-{phase}-{client}-{n}", "type": "commission.upserted", "occurred_at": "2026-06-10T12:00:00Z",
        "data": {"commission_id": f"S-{phase}-{client}-{n}", "policy_id": "STREAM-P", "agent_id": "STREAM-A",
                 "carrier_id": "STREAM-C", "transaction_date": "2026-06-10", "kind": "new",
                 "premium_amount": "100.00", "commission_rate": "0.10", "gross_commission": "10.00",
                 "agent_commission": "4.00", "agency_commission": "6.00"}})


async def client(session, url, headers, phase, cid, batch, until, counts):
    n = 0
    while time.monotonic() < until:
        body = "\n".join(commission(phase, cid, n + i) for i in range(batch))
        n += batch
        async with session.post(f"{url}/ingest/events", data=body, headers=headers) as r:
            out = await r.json()
            if r.status == 200:
                counts["accepted"] += out["accepted"]
            else:
                counts[f"http_{r.status}"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))


async def prober(session, url, headers, until, latencies):
    n = 0
    while time.monotonic() < until:
        n += 1
        name = f"m-{n}"
        # Later marks must win: occurred_at is the wall clock.
        at = datetime.datetime.now(datetime.timezone.utc).isoformat()
        ev = json.dumps({"event_id": f"mark-{time.time_ns()}", "type": "agency.upserted", "occurred_at": at,
                         "data": {"agency_id": MARK, "name": name}})
        async with session.post(f"{url}/ingest/events", data=ev, headers=headers) as r:
            await r.read()
            if r.status != 200:
                await asyncio.sleep(0.5)
                continue
        acked = time.monotonic()
        q = json.dumps({"query": f'{{ agency(id: "{MARK}") {{ name }} }}'})
        while time.monotonic() - acked < 30:
            async with session.post(f"{url}/graphql", data=q,
                                    headers={**headers, "content-type": "application/json"}) as r:
                body = await r.json()
            if ((body.get("data") or {}).get("agency") or {}).get("name") == name:
                latencies.append(time.monotonic() - acked)
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)


async def phase(name, url, key, pid, seconds, clients, batch, rss):
    headers = {"X-API-Key": key}
    counts = collections.Counter(accepted=0)
    latencies = []
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 4)) as s:
        async def sample():
            while time.monotonic() < until:
                rss.append(rss_kib(pid))
                await asyncio.sleep(1)
        started = time.monotonic()
        await asyncio.gather(prober(s, url, headers, until, latencies), sample(),
                             *(client(s, url, headers, name, c, batch, until, counts) for c in range(clients)))
        took = time.monotonic() - started
    return counts, latencies, took


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=4)
    # One event per request is bounded by round trips, not by the server:
    # more clients in flight (as many AMS webhooks are) fill each log write.
    ap.add_argument("--single-clients", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rss = []
    report = {}
    for name, batch, clients in (("ndjson", a.batch, a.clients), ("single", 1, a.single_clients)):
        counts, lat, took = asyncio.run(phase(name, a.url, a.key, a.pid, a.seconds, clients, batch, rss))
        report[name] = {"events_per_s": round(counts["accepted"] / took), "refused": {k: v for k, v in counts.items() if k != "accepted"},
                        "visible_p50_ms": round(pct(lat, 0.5) * 1000), "visible_p99_ms": round(pct(lat, 0.99) * 1000),
                        "probes": len(lat)}
        print(f"{name:7s} ({batch:5d}/request, {clients} clients, {a.seconds:.0f} s): "
              f"{report[name]['events_per_s']:8d} events/s accepted; visible after p50 "
              f"{report[name]['visible_p50_ms']} ms, p99 {report[name]['visible_p99_ms']} ms ({len(lat)} probes); "
              f"refused {report[name]['refused'] or 'none'}")
    report["rss_mib"] = {"first": round(rss[0] / 1024), "max": round(max(rss) / 1024), "last": round(rss[-1] / 1024)}
    print(f"server RSS: first {report['rss_mib']['first']} MiB, max {report['rss_mib']['max']} MiB, "
          f"last {report['rss_mib']['last']} MiB")
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    ok = all(report[p]["probes"] > 0 for p in ("ndjson", "single"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
