"""Load driver of benches/guard_load.sh: HTTP and WebSocket clients against
one cip server on loopback for a fixed time, a /health prober, and RSS
samples of the server process. Bounded in time and to 127.0.0.1."""

import argparse
import asyncio
import collections
import json
import multiprocessing
import statistics
import sys
import time

import aiohttp

# A cached question (the same text each time) and uncached ones (a new date
# each time), so that both the cache and the engine slots are exercised.
CACHED = '{ agencies { id kpis(asOf: "2025-12-31") { ytdCommission activePolicies } } }'
UNCACHED = '{{ agencies {{ id kpis(asOf: "2025-{m:02d}-{d:02d}") {{ mtdCommission }} }} }}'


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def query(i):
    return CACHED if i % 4 else UNCACHED.format(m=1 + i % 12, d=1 + i % 28)


async def http_client(session, url, key, stop, stats, n):
    i = n * 1000
    while time.monotonic() < stop:
        i += 1
        async with session.post(f"{url}/graphql", json={"query": query(i)}, headers={"X-API-Key": key}) as r:
            body = await r.json(content_type=None)
            code = (body.get("errors") or [{}])[0].get("extensions", {}).get("code", "ok")
            stats["http", r.status, code] += 1
            if r.status == 429:
                if r.headers.get("Retry-After", "").isdigit():
                    stats["http_429_with_retry_after"] += 1
                await asyncio.sleep(0.05)


async def ws_client(session, url, key, stop, stats, n):
    ws_url = url.replace("http", "ws") + "/graphql/ws"
    async with session.ws_connect(ws_url, protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"X-API-Key": key}})
        ack = await ws.receive_json()
        assert ack["type"] == "connection_ack", ack
        i = n * 1000
        while time.monotonic() < stop:
            i += 1
            await ws.send_json({"id": str(i), "type": "subscribe", "payload": {"query": query(i)}})
            while True:
                msg = await ws.receive_json()
                if msg["type"] == "next":
                    errors = msg["payload"].get("errors") or [{}]
                    code = errors[0].get("extensions", {}).get("code", "ok")
                    stats["ws", "next", code] += 1
                    if code == "RATE_LIMITED":
                        await asyncio.sleep(0.05)
                elif msg["type"] == "complete":
                    break
                else:
                    stats["ws", msg["type"], "-"] += 1
                    break
        await ws.close()


def prober(url, seconds, out):
    """/health every 50 ms from its own process, so that the load clients'
    event loop does not delay the probe's own clock."""
    import http.client
    host, port = url.removeprefix("http://").split(":")
    stop = time.monotonic() + seconds
    lat = []
    while time.monotonic() < stop:
        t = time.perf_counter()
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            # A failed probe counts as infinitely slow.
            lat.append((time.perf_counter() - t) * 1000 if r.status == 200 else float("inf"))
        except OSError:
            lat.append(float("inf"))
        time.sleep(0.05)
    out.put(lat)


async def sampler(pid, stop, rss):
    while time.monotonic() < stop:
        rss.append(rss_kib(pid))
        await asyncio.sleep(0.5)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--key-http", required=True)
    p.add_argument("--key-ws", required=True)
    p.add_argument("--out", default="/tmp/cip-bench-guard/last.json")
    a = p.parse_args()
    assert a.url.startswith("http://127.0.0.1:"), "loopback only"
    stats = collections.Counter()
    latencies, rss = [], []
    start_rss = rss_kib(a.pid)
    stop = time.monotonic() + a.seconds
    timeout = aiohttp.ClientTimeout(total=a.seconds + 30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        tasks = [http_client(http, a.url, a.key_http, stop, stats, n) for n in range(8)]
        tasks += [ws_client(http, a.url, a.key_ws, stop, stats, n) for n in range(8)]
        tasks += [sampler(a.pid, stop, rss)]
        queue = multiprocessing.Queue()
        probe_proc = multiprocessing.Process(target=prober, args=(a.url, a.seconds, queue))
        probe_proc.start()
        await asyncio.gather(*tasks)
        latencies = await asyncio.get_running_loop().run_in_executor(None, queue.get)
        probe_proc.join()
    http_total = sum(v for k, v in stats.items() if isinstance(k, tuple) and k[0] == "http")
    ws_total = sum(v for k, v in stats.items() if isinstance(k, tuple) and k[0] == "ws")
    print(f"{a.seconds:.0f} s, 8 HTTP + 8 WebSocket clients: {http_total} HTTP requests, {ws_total} WebSocket operations")
    for k in sorted((k for k in stats if isinstance(k, tuple)), key=str):
        print(f"  {k[0]:<5}{str(k[1]):<6}{k[2]:<16}{stats[k]:>8}")
    n429 = stats["http", 429, "RATE_LIMITED"]
    print(f"  HTTP 429 with Retry-After: {stats['http_429_with_retry_after']} of {n429}")
    lat = sorted(latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))]
    print(f"/health: {len(lat)} probes, p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
    print(f"server RSS: {start_rss / 1024:.0f} MiB at start, peak {max(rss) / 1024:.0f} MiB, "
          f"end {rss[-1] / 1024:.0f} MiB")
    fives = sum(v for k, v in stats.items() if isinstance(k, tuple) and k[0] == "http" and k[1] >= 500)
    problems = []
    if fives:
        problems.append(f"{fives} HTTP 5xx")
    if stats["http_429_with_retry_after"] != n429:
        problems.append("a 429 without Retry-After")
    if lat[-1] >= 100:
        problems.append(f"/health took {lat[-1]:.0f} ms")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    json.dump({"stats": {str(k): v for k, v in stats.items()}, "health_ms": lat, "rss_kib": rss},
              open(a.out, "w"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    asyncio.run(main())
