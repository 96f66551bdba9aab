"""Load driver of benches/streaming.sh: clients posting events to one cip
server on loopback for a fixed time (NDJSON batches, then one event per
request), a prober measuring acknowledgement → visibility in GraphQL, and
RSS samples of the server. Bounded in time and to 127.0.0.1."""

import argparse
import asyncio
import collections
import csv
import datetime
import glob
import os
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


async def post_events(session, url, headers, body, counts):
    """Post one NDJSON body and count what the server took or refused; the
    seconds a refusal asks to wait (Retry-After), or None when accepted."""
    async with session.post(f"{url}/ingest/events", data=body, headers=headers) as r:
        out = await r.json()
        if r.status == 200:
            counts["accepted"] += out["accepted"]
            return None
        counts[f"http_{r.status}"] += 1
        return float(r.headers.get("Retry-After", "1"))


async def client(session, url, headers, phase, cid, batch, until, counts):
    n = 0
    while time.monotonic() < until:
        body = "\n".join(commission(phase, cid, n + i) for i in range(batch))
        n += batch
        try:
            retry_after = await post_events(session, url, headers, body, counts)
            if retry_after is not None:
                await asyncio.sleep(retry_after)
        except aiohttp.ClientError:
            # A refusal the client could not read (the connection closed
            # while it was sending): counted, and retried after a pause.
            counts["connection_error"] += 1
            await asyncio.sleep(1)


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


def book_policy(landing, tenant):
    """The tenant's last policy in the landing (agency, agent, carrier,
    policy): the dashboard phase's commissions go to it, so that each commit
    changes the figures the dashboard asks for."""
    last = None
    for f in sorted(glob.glob(os.path.join(landing, "policies", "*.csv"))):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["tenant_id"] == tenant:
                    last = row
    if last is None:
        sys.exit(f"no policy of {tenant} in {landing}")
    return last


async def dashboard(url, key, policy, seconds, pollers):
    """About one commit a second (one commission event a second on
    `policy`, in the month of the KPIs' as-of date) while `pollers` clients
    ask the dashboard's KPI and leaderboard queries, each every 100 ms
    (together under the credential's default rate limit of 50/s): their
    result cache turns over with every commit. Latency per query kind."""
    headers = {"X-API-Key": key, "content-type": "application/json"}
    as_of = policy["effective_date"]
    year = int(as_of[:4])
    queries = {
        "kpis": f'{{ agency(id: {json.dumps(policy["agency_id"])}) {{ kpis(asOf: "{as_of}") '
                "{ mtdCommission ytdCommission activePolicies writtenPremiumYtd retentionRate12m } } }",
        "leaderboard": f'{{ leaderboard(by: AGENT, range: {{from: "{year}-01-01", to: "{year + 1}-01-01"}}, first: 100) '
                       "{ rank key name value { amount } } }",
    }
    latencies = {k: [] for k in queries}
    errors = collections.Counter()
    commits = 0
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        async def writer():
            nonlocal commits
            n = 0
            while time.monotonic() < until:
                n += 1
                ev = json.dumps({
                    "event_id": f"dash-{n}", "type": "commission.upserted",
                    "occurred_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "data": {"commission_id": f"DASH-{n}", "policy_id": policy["policy_id"],
                             "agent_id": policy["agent_id"], "carrier_id": policy["carrier_id"],
                             "transaction_date": as_of, "kind": "new", "premium_amount": "100.00",
                             "commission_rate": "0.10", "gross_commission": "10.00",
                             "agent_commission": "4.00", "agency_commission": "6.00"}})
                async with s.post(f"{url}/ingest/events", data=ev, headers={"X-API-Key": key}) as r:
                    await r.read()
                    commits += r.status == 200
                await asyncio.sleep(1)

        async def poller(i):
            kinds = list(queries)
            j = i
            while time.monotonic() < until:
                kind = kinds[j % len(kinds)]
                j += 1
                t = time.monotonic()
                async with s.post(f"{url}/graphql", data=json.dumps({"query": queries[kind]}), headers=headers) as r:
                    body = await r.json()
                took = time.monotonic() - t
                if r.status != 200 or body.get("errors"):
                    errors[kind] += 1
                    if errors[kind] == 1:
                        print(f"dashboard {kind}: HTTP {r.status}: {json.dumps(body)[:300]}", file=sys.stderr)
                else:
                    latencies[kind].append(took)
                await asyncio.sleep(max(0.0, 0.1 - took))

        await asyncio.gather(writer(), *(poller(i) for i in range(pollers)))
    return latencies, errors, commits


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


async def phase_wrk(wrk, url, key, pid, seconds, clients, rss):
    """The one-event-per-request phase driven by wrk (benches/streaming_single.lua)
    instead of Python clients, with the same prober and RSS samples."""
    headers = {"X-API-Key": key}
    counts = collections.Counter(accepted=0)
    latencies = []
    until = time.monotonic() + seconds
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "streaming_single.lua")
    async with aiohttp.ClientSession() as s:
        async def sample():
            while time.monotonic() < until:
                rss.append(rss_kib(pid))
                await asyncio.sleep(1)

        async def load():
            proc = await asyncio.create_subprocess_exec(
                wrk, "-t2", f"-c{clients}", f"-d{int(seconds)}s", "-s", lua, url, "--", key,
                stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            for line in out.decode().splitlines():
                if line.startswith("accepted "):
                    _, accepted, _, refused = line.split()
                    counts["accepted"] += int(accepted)
                    if int(refused):
                        counts["refused"] += int(refused)

        started = time.monotonic()
        await asyncio.gather(prober(s, url, headers, until, latencies), sample(), load())
        took = time.monotonic() - started
    return counts, latencies, took


async def soak(url, key, dash_key, pid, seconds, rate, policy):
    """A steady load for `seconds`: `rate` commission events a second in
    NDJSON batches every 100 ms, the prober, and two dashboard pollers
    (with a credential of their own: the prober's polling would take the
    first one's rate limit), while the server's RSS is sampled every 5 s. Memory should level off
    once the bounded caches are full, however long it runs."""
    headers = {"X-API-Key": key}
    counts = collections.Counter(accepted=0)
    latencies, rss = [], []
    per_batch = max(1, rate // 10)
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        async def sender():
            n, tick = 0, time.monotonic()
            while time.monotonic() < until:
                body = "\n".join(commission("soak", 0, n + i) for i in range(per_batch))
                n += per_batch
                try:
                    await post_events(s, url, headers, body, counts)
                except aiohttp.ClientError:
                    counts["connection_error"] += 1
                tick += 0.1
                await asyncio.sleep(max(0.0, tick - time.monotonic()))

        async def sample():
            while time.monotonic() < until:
                rss.append((time.monotonic(), rss_kib(pid), await memory_parts(s, url)))
                await asyncio.sleep(5)

        async def dash():
            lat, errors, _ = await dashboard(url, dash_key, policy, seconds, 2)
            return lat, errors

        started = time.monotonic()
        *_, (dash_lat, dash_errors) = await asyncio.gather(
            prober(s, url, headers, until, latencies), sample(), sender(), dash())
        took = time.monotonic() - started
    return counts, latencies, took, rss, dash_lat, dash_errors


async def memory_parts(session, url):
    """The server's own account of its memory (/metrics: cip_memory_bytes
    by part), in bytes; empty if it cannot be read."""
    try:
        async with session.get(f"{url}/metrics") as r:
            text = await r.text()
    except aiohttp.ClientError:
        return {}
    parts = {}
    for line in text.splitlines():
        if line.startswith('cip_memory_bytes{part="'):
            name, value = line[len('cip_memory_bytes{part="'):].split('"} ')
            parts[name] = int(value)
    return parts


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
    ap.add_argument("--landing", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--pollers", type=int, default=4)
    ap.add_argument("--wrk", help="wrk binary: drives the one-event-per-request phase")
    ap.add_argument("--soak-seconds", type=float, default=0)
    ap.add_argument("--soak-rate", type=int, default=1000)
    ap.add_argument("--dash-key", help="the soak's dashboard pollers' credential")
    a = ap.parse_args()
    rss = []
    report = {}
    for name, batch, clients in (("ndjson", a.batch, a.clients), ("single", 1, a.single_clients)):
        if name == "single" and a.wrk:
            counts, lat, took = asyncio.run(phase_wrk(a.wrk, a.url, a.key, a.pid, a.seconds, clients, rss))
        else:
            counts, lat, took = asyncio.run(phase(name, a.url, a.key, a.pid, a.seconds, clients, batch, rss))
        report[name] = {"events_per_s": round(counts["accepted"] / took), "refused": {k: v for k, v in counts.items() if k != "accepted"},
                        "visible_p50_ms": round(pct(lat, 0.5) * 1000), "visible_p99_ms": round(pct(lat, 0.99) * 1000),
                        "probes": len(lat)}
        print(f"{name:7s} ({batch:5d}/request, {clients} clients, {a.seconds:.0f} s): "
              f"{report[name]['events_per_s']:8d} events/s accepted; visible after p50 "
              f"{report[name]['visible_p50_ms']} ms, p99 {report[name]['visible_p99_ms']} ms ({len(lat)} probes); "
              f"refused {report[name]['refused'] or 'none'}")
    lat, errors, commits = asyncio.run(dashboard(a.url, a.key, book_policy(a.landing, a.tenant), a.seconds, a.pollers))
    report["dashboard"] = {k: {"p50_ms": round(pct(v, 0.5) * 1000, 1), "p99_ms": round(pct(v, 0.99) * 1000, 1),
                               "queries": len(v), "errors": errors[k]} for k, v in lat.items()}
    report["dashboard"]["commits"] = commits
    for k, v in lat.items():
        d = report["dashboard"][k]
        print(f"dashboard {k:11s} ({a.pollers} pollers, one event/s, {commits} events, 10 queries/s each): p50 {d['p50_ms']} ms, "
              f"p99 {d['p99_ms']} ms over {d['queries']} queries, {d['errors']} errors")
    if a.soak_seconds > 0:
        counts, lat_s, took, samples, dash_lat, dash_errors = asyncio.run(
            soak(a.url, a.key, a.dash_key or a.key, a.pid, a.soak_seconds, a.soak_rate, book_policy(a.landing, a.tenant)))
        t0 = samples[0][0]
        minutes = collections.defaultdict(int)
        # The memory parts of the sample that set each minute's maximum.
        parts_at = {}
        for t, kib, parts in samples:
            minute = int((t - t0) // 60)
            if kib >= minutes[minute]:
                minutes[minute], parts_at[minute] = kib, parts
        by_minute = [round(minutes[m] / 1024) for m in sorted(minutes)]
        mib = lambda b: round(b / 2**20)
        parts_by_minute = {name: [mib(parts_at[m].get(name, 0)) for m in sorted(minutes)]
                           for name in sorted({n for p in parts_at.values() for n in p})}
        half = [kib for t, kib, _ in samples if t - t0 >= (samples[-1][0] - t0) / 2]
        report["soak"] = {
            "seconds": round(took), "events_per_s": round(counts["accepted"] / took),
            "refused": {k: v for k, v in counts.items() if k != "accepted"},
            "visible_p50_ms": round(pct(lat_s, 0.5) * 1000), "visible_p99_ms": round(pct(lat_s, 0.99) * 1000),
            "probes": len(lat_s), "rss_max_mib_by_minute": by_minute, "memory_parts_mib_by_minute": parts_by_minute,
            "second_half_rss_mib": {"min": round(min(half) / 1024), "max": round(max(half) / 1024)},
            "dashboard": {k: {"p50_ms": round(pct(v, 0.5) * 1000, 1), "p99_ms": round(pct(v, 0.99) * 1000, 1),
                              "queries": len(v), "errors": dash_errors[k]} for k, v in dash_lat.items()},
        }
        r = report["soak"]
        print(f"soak    ({a.soak_rate}/s in batches every 100 ms, {r['seconds']} s): {r['events_per_s']} events/s accepted; "
              f"visible after p50 {r['visible_p50_ms']} ms, p99 {r['visible_p99_ms']} ms ({r['probes']} probes); "
              f"refused {r['refused'] or 'none'}")
        print(f"soak    dashboard: " + ", ".join(f"{k} p50 {d['p50_ms']} ms p99 {d['p99_ms']} ms ({d['queries']} queries, {d['errors']} errors)"
                                              for k, d in r["dashboard"].items()))
        print(f"soak    server RSS, max per minute (MiB): {by_minute}; second half between "
              f"{r['second_half_rss_mib']['min']} and {r['second_half_rss_mib']['max']} MiB")
        # What the server says holds it (at each minute's maximum): the
        # bounded caches filling up, against the allocator's own totals.
        for name, values in parts_by_minute.items():
            print(f"soak    {name:24s} (MiB): {values}")
    report["rss_mib"] = {"first": round(rss[0] / 1024), "max": round(max(rss) / 1024), "last": round(rss[-1] / 1024)}
    print(f"server RSS over the load phases: first {report['rss_mib']['first']} MiB, max {report['rss_mib']['max']} MiB, "
          f"last {report['rss_mib']['last']} MiB")
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    ok = all(report[p]["probes"] > 0 for p in ("ndjson", "single")) and all(
        report["dashboard"][k]["queries"] > 0 and not report["dashboard"][k]["errors"] for k in lat)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
