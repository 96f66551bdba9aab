"""Driver of benches/api_vs_duckdb.sh: four questions through cip's GraphQL
API (HTTP on loopback) and through DuckDB (in process) over the same Parquet
files of one tenant; first-query times and their ratio, a check that both
answers agree, cached latency, a wrk load test and the server's peak RSS.

Only the standard library for HTTP (http.client, keep-alive) plus `duckdb`.
Exit status: 1 when any answer disagrees (or the API returns errors), 0
otherwise; missed targets are reported, not failures.
"""

import argparse
import datetime as dt
import glob
import http.client
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
from decimal import Decimal

import duckdb

# The questions' dates: data runs 2021-01-01 .. 2026-01-01 (`cip generate`).
AS_OF = "2025-06-30"  # agency KPIs at this date
YEAR = 2024  # leaderboard and renewal-rate year
REPEATS = 200  # cached requests per question
DUCK_RUNS = 3  # DuckDB, a fresh connection each time: best of
WARM_RUNS = 5  # DuckDB, one warm connection: median of, after one warm-up
LOAD_SECONDS = 10
LOAD_THREADS = 2
LOAD_CONNECTIONS = 32
RATE_EPS = 1e-9

# Targets of the issue.
TARGET_FIRST_RATIO = 1.0
TARGET_P99_MS = 5.0
TARGET_RPS = 2000.0
TARGET_RSS_MIB = 1024.0

ENTITIES = ["agencies", "agents", "carriers", "policies", "commissions"]


# ---------------------------------------------------------------------------
# Lake, server
# ---------------------------------------------------------------------------


def latest_manifest(lake):
    """The newest lake version's live files, as cip serves them."""
    out = subprocess.run([os.environ["CIP"], "lake", "files", "--lake", lake], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def tenant_files(lake, manifest, tenant):
    """Entity → absolute paths of the tenant's files in the served snapshot
    (exactly the files the server registers)."""
    out = {}
    for entity in ENTITIES:
        files = [os.path.join(lake, f["path"]) for f in manifest["tables"].get(entity, []) if f["tenant_id"] == tenant]
        if not files:
            sys.exit(f"tenant {tenant} has no {entity} files in the snapshot")
        out[entity] = files
    return out


def wait_for_server(log, pid, timeout_s=300):
    """The URL the server prints, once /ready answers 200."""
    deadline = time.monotonic() + timeout_s
    url = None
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            sys.exit(f"cip serve exited early; its log:\n{open(log).read()}")
        if url is None:
            m = re.search(r"http://127\.0\.0\.1:\d+", open(log).read())
            url = m.group(0) if m else None
        if url is not None:
            try:
                status, _ = http_get(url, "/ready")
                if status == 200:
                    return url
            except OSError:
                pass
        time.sleep(0.1)
    sys.exit(f"cip serve not ready after {timeout_s} s; its log:\n{open(log).read()}")


def http_get(url, path):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Api:
    """GraphQL over one keep-alive HTTP/1.1 connection."""

    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.key = u.hostname, u.port, key
        self.conn = None

    def connect(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.conn.connect()

    def post_raw(self, body):
        """POST a prepared body; (status, response bytes)."""
        if self.conn is None:
            self.connect()
        headers = {"Content-Type": "application/json", "X-API-Key": self.key}
        self.conn.request("POST", "/graphql", body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()


def gql_body(query):
    return json.dumps({"query": query}).encode()


def cache_counters(url):
    _, text = http_get(url, "/metrics")
    out = {}
    for name in ("cip_cache_hits_total", "cip_cache_misses_total"):
        m = re.search(rf"^{name} (\d+)", text.decode(), re.M)
        out[name] = int(m.group(1)) if m else None
    return out


# ---------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------


def duck_connect(files):
    """A fresh in-process connection with one view per entity over exactly
    the tenant's snapshot files."""
    con = duckdb.connect()
    for entity, paths in files.items():
        plist = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        con.execute(f"CREATE VIEW {entity} AS SELECT * FROM read_parquet([{plist}], hive_partitioning = false)")
    return con


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def money(v):
    """An exact decimal with two fraction digits (None = no rows = 0)."""
    return (Decimal(0) if v is None else Decimal(v)).quantize(Decimal("0.01"))


def months(start, end):
    """`YYYY-MM` of every month from `start`'s month up to `end` (exclusive)."""
    out = []
    y, m = start.year, start.month
    while dt.date(y, m, 1) < end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ---------------------------------------------------------------------------
# The four questions: GraphQL, the equivalent SQL, both answers normalised
# to the same plain Python shape.
# ---------------------------------------------------------------------------


class Question:
    name = ""
    label = ""

    def graphql(self):
        raise NotImplementedError

    def from_api(self, data):
        raise NotImplementedError

    def from_duck(self, con):
        raise NotImplementedError


class AgencyKpis(Question):
    name = "kpis"

    def __init__(self, agency, as_of):
        self.agency, self.as_of = agency, dt.date.fromisoformat(as_of)
        self.label = f"agency {agency} KPIs at {as_of}"

    def graphql(self):
        return (
            f'{{ agency(id: {json.dumps(self.agency)}) {{ kpis(asOf: "{self.as_of}") '
            "{ asOf mtdCommission ytdCommission activePolicies writtenPremiumYtd retentionRate12m } } }"
        )

    def from_api(self, data):
        k = data["agency"]["kpis"]
        return {
            "mtd_commission": money(k["mtdCommission"]),
            "ytd_commission": money(k["ytdCommission"]),
            "active_policies": k["activePolicies"],
            "written_premium_ytd": money(k["writtenPremiumYtd"]),
            "retention_rate_12m": k["retentionRate12m"],
        }

    def from_duck(self, con):
        d = self.as_of
        month_start, year_start = d.replace(day=1), d.replace(month=1, day=1)
        # 12 months before as-of (as_of is not the 29th of February here).
        ret_from = d.replace(year=d.year - 1)
        a = sql_str(self.agency)
        # Commission rows count for the agency of their policy; MTD / YTD run
        # from the first of the month / year up to and including as-of.
        # Active at d: effective <= d < expiration, no cancellation <= d.
        # Up for renewal: expiration in [as-of - 12 months, as-of), not
        # cancelled before it; renewed: named in some policy's renewal_of.
        row = con.execute(
            f"""
            WITH c AS (
              SELECT sum(c.gross_commission) FILTER (WHERE c.transaction_date >= DATE '{month_start}') AS mtd,
                     sum(c.gross_commission) AS ytd
              FROM commissions c JOIN policies p ON p.policy_id = c.policy_id
              WHERE p.agency_id = {a}
                AND c.transaction_date >= DATE '{year_start}' AND c.transaction_date <= DATE '{d}'
            ), renewed_ids AS (
              SELECT DISTINCT renewal_of AS id FROM policies WHERE renewal_of IS NOT NULL
            ), p AS (
              SELECT
                count(*) FILTER (WHERE effective_date <= DATE '{d}' AND DATE '{d}' < expiration_date
                                   AND (cancellation_date IS NULL OR cancellation_date > DATE '{d}')) AS active,
                sum(premium) FILTER (WHERE effective_date >= DATE '{year_start}'
                                       AND effective_date <= DATE '{d}') AS written,
                count(*) FILTER (WHERE up) AS up,
                count(*) FILTER (WHERE up AND r.id IS NOT NULL) AS renewed
              FROM (
                SELECT *, expiration_date >= DATE '{ret_from}' AND expiration_date < DATE '{d}'
                          AND NOT coalesce(cancellation_date < expiration_date, false) AS up
                FROM policies WHERE agency_id = {a}
              ) pol LEFT JOIN renewed_ids r ON r.id = pol.policy_id
            )
            SELECT c.mtd, c.ytd, p.active, p.written, p.up, p.renewed FROM c, p
            """
        ).fetchone()
        mtd, ytd, active, written, up, renewed = row
        return {
            "mtd_commission": money(mtd),
            "ytd_commission": money(ytd),
            "active_policies": active,
            "written_premium_ytd": money(written),
            "retention_rate_12m": (renewed / up) if up else None,
        }


class AgentLeaderboard(Question):
    name = "leaderboard"

    def __init__(self, year):
        self.year = year
        self.label = f"agent leaderboard, gross commission {year}"

    def graphql(self):
        return (
            f'{{ leaderboard(by: AGENT, range: {{from: "{self.year}-01-01", to: "{self.year + 1}-01-01"}}, first: 1000) '
            "{ rank key name value { amount } } }"
        )

    def from_api(self, data):
        return [(e["rank"], e["key"], e["name"], money(e["value"]["amount"])) for e in data["leaderboard"]]

    def from_duck(self, con):
        # A commission row counts for the agent it names; ranks 1, 2, 2, 4.
        rows = con.execute(
            f"""
            WITH g AS (
              SELECT agent_id, sum(gross_commission) AS value FROM commissions
              WHERE transaction_date >= DATE '{self.year}-01-01' AND transaction_date < DATE '{self.year + 1}-01-01'
              GROUP BY agent_id
            )
            SELECT rank() OVER (ORDER BY g.value DESC) AS rank, g.agent_id, a.name, g.value
            FROM g LEFT JOIN agents a ON a.agent_id = g.agent_id
            ORDER BY g.value DESC, g.agent_id
            LIMIT 1000
            """
        ).fetchall()
        return [(r, k, n, money(v)) for r, k, n, v in rows]


class CarrierTrend(Question):
    name = "trend"

    def __init__(self, start, end):
        self.start, self.end = start, end  # first of a month, exclusive end
        self.label = f"monthly gross commission per carrier {start:%Y-%m}..{end:%Y-%m} (all history)"

    def graphql(self):
        return (
            f'{{ trend(metric: GROSS_COMMISSION, range: {{from: "{self.start}", to: "{self.end}"}}, groupBy: CARRIER) '
            "{ key name points { month value { amount } } } }"
        )

    def from_api(self, data):
        return [
            (s["key"], s["name"], [(p["month"], money(p["value"]["amount"])) for p in s["points"]])
            for s in data["trend"]
        ]

    def from_duck(self, con):
        rows = con.execute(
            f"""
            WITH g AS (
              SELECT carrier_id, strftime(transaction_date, '%Y-%m') AS month, sum(gross_commission) AS value
              FROM commissions
              WHERE transaction_date >= DATE '{self.start}' AND transaction_date < DATE '{self.end}'
              GROUP BY ALL
            )
            SELECT g.carrier_id, k.name, g.month, g.value FROM g LEFT JOIN carriers k ON k.carrier_id = g.carrier_id
            ORDER BY g.carrier_id, g.month
            """
        ).fetchall()
        all_months = months(self.start, self.end)
        series = {}
        for key, name, month, value in rows:
            series.setdefault((key, name), {})[month] = value
        return [
            (key, name, [(m, money(points.get(m))) for m in all_months]) for (key, name), points in sorted(series.items())
        ]


class RenewalByLine(Question):
    name = "renewal"

    def __init__(self, year):
        self.year = year
        self.label = f"renewal rate by line of business {year}"

    def graphql(self):
        return (
            f"{{ leaderboard(by: LINE_OF_BUSINESS, metric: RENEWAL_RATE, "
            f'range: {{from: "{self.year}-01-01", to: "{self.year + 1}-01-01"}}, first: 1000) '
            "{ rank key value { rate } } }"
        )

    def from_api(self, data):
        return [(e["rank"], e["key"], e["value"]["rate"]) for e in data["leaderboard"]]

    def from_duck(self, con):
        # Up for renewal: expiration in the year, not cancelled before it;
        # renewed: some policy of the tenant names it in renewal_of.
        rows = con.execute(
            f"""
            WITH renewed_ids AS (
              SELECT DISTINCT renewal_of AS id FROM policies WHERE renewal_of IS NOT NULL
            ), g AS (
              SELECT p.line_of_business AS line, count(*) AS up, count(r.id) AS renewed
              FROM policies p LEFT JOIN renewed_ids r ON r.id = p.policy_id
              WHERE p.expiration_date >= DATE '{self.year}-01-01' AND p.expiration_date < DATE '{self.year + 1}-01-01'
                AND NOT coalesce(p.cancellation_date < p.expiration_date, false)
              GROUP BY p.line_of_business
            )
            SELECT rank() OVER (ORDER BY renewed::DOUBLE / up DESC) AS rank, line, renewed::DOUBLE / up AS rate
            FROM g ORDER BY rate DESC, line
            LIMIT 1000
            """
        ).fetchall()
        return [(r, k if k is not None else "", v) for r, k, v in rows]


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


def differences(api, duck, path="answer"):
    """Human-readable differences between two normalised answers (money
    exact to the cent, counts exact, rates within 1e-9)."""
    out = []
    if isinstance(api, dict) and isinstance(duck, dict):
        for k in sorted(set(api) | set(duck)):
            if k not in api or k not in duck:
                out.append(f"{path}.{k}: only in {'API' if k in api else 'DuckDB'}")
            else:
                out += differences(api[k], duck[k], f"{path}.{k}")
    elif isinstance(api, (list, tuple)) and isinstance(duck, (list, tuple)):
        if len(api) != len(duck):
            out.append(f"{path}: {len(api)} entries from the API, {len(duck)} from DuckDB")
        for i, (a, d) in enumerate(zip(api, duck)):
            out += differences(a, d, f"{path}[{i}]")
    elif isinstance(api, float) or isinstance(duck, float):
        if api is None or duck is None or not math.isclose(api, duck, rel_tol=0, abs_tol=RATE_EPS):
            out.append(f"{path}: API {api!r}, DuckDB {duck!r}")
    elif api != duck:
        out.append(f"{path}: API {api!r}, DuckDB {duck!r}")
    return out


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    i = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[i]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--server-log", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--wrk", default="")
    args = ap.parse_args()

    manifest = latest_manifest(args.lake)
    files = tenant_files(args.lake, manifest, args.tenant)
    rows = {e: sum(f["rows"] for f in manifest["tables"][e] if f["tenant_id"] == args.tenant) for e in ENTITIES}
    print(
        f"snapshot {manifest['version']}, tenant {args.tenant}: "
        + ", ".join(f"{rows[e]:,} {e} ({len(files[e])} files)" for e in ENTITIES)
    )
    threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    print(f"duckdb {duckdb.__version__}, {threads} threads")

    # Set-up (untimed): the tenant's largest agency and its commission history.
    con = duck_connect(files)
    agency, agency_policies = con.execute(
        "SELECT agency_id, count(*) AS n FROM policies GROUP BY agency_id ORDER BY n DESC, agency_id LIMIT 1"
    ).fetchone()
    first_tx, last_tx = con.execute("SELECT min(transaction_date), max(transaction_date) FROM commissions").fetchone()
    con.close()
    history_from = first_tx.replace(day=1)
    history_to = (last_tx.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    print(f"largest agency {agency} ({agency_policies:,} policies); commission history {first_tx} .. {last_tx}")

    # Same OS page cache for both: read every file of the tenant once.
    for paths in files.values():
        for p in paths:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass

    url = wait_for_server(args.server_log, args.server_pid)
    print(f"cip serve ready at {url} (pid {args.server_pid})")
    print()

    questions = [
        AgencyKpis(agency, AS_OF),
        AgentLeaderboard(YEAR),
        CarrierTrend(history_from, history_to),
        RenewalByLine(YEAR),
    ]
    api = Api(url, args.key)
    results = {}
    disagreements = []

    # 1. First (uncached) request per question vs DuckDB; answers must agree.
    print(
        f"== first query after the snapshot was loaded (cip: one request, uncached; DuckDB fresh: a new connection, "
        f"best of {DUCK_RUNS}; DuckDB warm: one connection with its views, median of {WARM_RUNS} after a warm-up)"
    )
    print("   (cip's first request also opens the tenant's view: registers its files, loads its directory)")
    warm = duck_connect(files)  # what an analyst with DuckDB open has
    for q in questions:
        body = gql_body(q.graphql())
        api.connect()  # a new connection, as a first client would open
        t0 = time.perf_counter()
        status, raw = api.post_raw(body)
        cip_s = time.perf_counter() - t0
        reply = json.loads(raw)
        if status != 200 or reply.get("errors"):
            print(f"FAIL {q.name}: HTTP {status}, errors {reply.get('errors')}\n  query: {q.graphql()}")
            disagreements.append((q.name, [f"API error: HTTP {status} {reply.get('errors')}"]))
            results[q.name] = {"cip_s": cip_s, "duck_s": None, "body": raw}
            continue
        api_answer = q.from_api(reply["data"])

        duck_times, duck_answer = [], None
        for _ in range(DUCK_RUNS):
            t0 = time.perf_counter()
            c = duck_connect(files)
            duck_answer = q.from_duck(c)
            duck_times.append(time.perf_counter() - t0)
            c.close()
        duck_s = min(duck_times)
        q.from_duck(warm)  # the warm-up
        warm_times = []
        for _ in range(WARM_RUNS):
            t0 = time.perf_counter()
            warm_answer = q.from_duck(warm)
            warm_times.append(time.perf_counter() - t0)
        warm_s = statistics.median(warm_times)

        diffs = differences(api_answer, duck_answer) + differences(api_answer, warm_answer, "warm answer")
        size = len(api_answer) if isinstance(api_answer, list) else 1
        print(
            f"{q.name:<12} cip {cip_s * 1000:9.1f} ms   duckdb fresh {duck_s * 1000:9.1f} ms  warm {warm_s * 1000:9.1f} ms   "
            f"cip/fresh {cip_s / duck_s:6.2f}x  cip/warm {cip_s / warm_s:6.2f}x   ({size} entries)  {q.label}"
        )
        if diffs:
            disagreements.append((q.name, diffs))
            print(f"  DISAGREE ({len(diffs)} differences); query: {q.graphql()}")
            for d in diffs[:20]:
                print(f"    {d}")
            if len(diffs) > 20:
                print(f"    … {len(diffs) - 20} more")
        else:
            print("  answers agree" + (f": {api_answer}" if isinstance(api_answer, dict) else ""))
        results[q.name] = {"cip_s": cip_s, "duck_s": duck_s, "warm_s": warm_s, "body": raw}
    warm.close()
    print()

    # 2. Cached latency: the same request again, on one keep-alive connection.
    print(f"== cached: each query {REPEATS} times more (keep-alive connection)")
    before = cache_counters(url)
    api.connect()
    for q in questions:
        body = gql_body(q.graphql())
        first = results[q.name]["body"]
        lat, changed = [], 0
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            status, raw = api.post_raw(body)
            lat.append(time.perf_counter() - t0)
            changed += status != 200 or raw != first
        lat.sort()
        p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
        results[q.name].update(p50_ms=p50, p99_ms=p99)
        note = f"   {changed} responses differ from the first!" if changed else ""
        print(f"{q.name:<12} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   max {lat[-1] * 1000:7.3f} ms{note}")
        if changed:
            disagreements.append((q.name, [f"{changed} cached responses differ from the first response"]))
    after = cache_counters(url)
    hits = (after["cip_cache_hits_total"] or 0) - (before["cip_cache_hits_total"] or 0)
    print(f"server cache hits during the repeats: {hits} of {REPEATS * len(questions)}")
    print()

    # 3. Load: wrk against the cached KPI query.
    rps, load_note = None, ""
    if args.wrk:
        lua = os.path.join(args.work, "kpis.lua")
        with open(lua, "w") as f:
            f.write(
                'wrk.method = "POST"\n'
                f"wrk.body = [==[{gql_body(questions[0].graphql()).decode()}]==]\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["X-API-Key"] = "{args.key}"\n'
            )
        print(
            f"== load: wrk -t{LOAD_THREADS} -c{LOAD_CONNECTIONS} -d{LOAD_SECONDS}s, cached KPI query "
            "(wrk shares the 2 cores with the server)"
        )
        before = cache_counters(url)
        cmd = [
            args.wrk,
            f"-t{LOAD_THREADS}",
            f"-c{LOAD_CONNECTIONS}",
            f"-d{LOAD_SECONDS}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            lua,
            f"{url}/graphql",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=LOAD_SECONDS + 60)
        after = cache_counters(url)
        print(out.stdout.rstrip())
        if out.returncode != 0:
            print(out.stderr.rstrip())
        m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
        rps = float(m.group(1)) if m else None
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
        if non2xx:
            load_note = f"{non2xx.group(1)} non-2xx responses"
            print(f"WARNING: {load_note} (rate limited?)")
        hits = (after["cip_cache_hits_total"] or 0) - (before["cip_cache_hits_total"] or 0)
        print(f"server cache hits during the load test: {hits}")
    else:
        print("== load: skipped (wrk not available)")
    print()

    # 4. Peak RSS of the server.
    status = open(f"/proc/{args.server_pid}/status").read()
    hwm_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    rss_kib = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    hwm_mib, rss_mib = hwm_kib / 1024, rss_kib / 1024

    # Summary.
    def verdict(ok):
        return "met" if ok else "MISSED"

    print("== summary")
    print(
        f"{'question':<12} {'cip first ms':>13} {'fresh ms':>9} {'warm ms':>8} {'/fresh':>7} {'/warm':>7} {'≤1.0x warm':>11} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'≤5ms':>7}  answers"
    )
    bad = {name for name, _ in disagreements}
    for q in questions:
        r = results[q.name]
        nan = float("nan")
        fresh = r["cip_s"] / r["duck_s"] if r.get("duck_s") else nan
        ratio = r["cip_s"] / r["warm_s"] if r.get("warm_s") else nan
        p50, p99 = r.get("p50_ms", nan), r.get("p99_ms", nan)
        print(
            f"{q.name:<12} {r['cip_s'] * 1000:13.1f} {(r.get('duck_s') or nan) * 1000:9.1f} "
            f"{(r.get('warm_s') or nan) * 1000:8.1f} {fresh:6.2f}x {ratio:6.2f}x "
            f"{verdict(ratio <= TARGET_FIRST_RATIO):>11} {p50:8.3f} {p99:8.3f} {verdict(p99 <= TARGET_P99_MS):>7}  "
            f"{'DISAGREE' if q.name in bad else 'agree'}"
        )
    if rps is not None:
        print(f"cached KPI load: {rps:,.0f} requests/s (target ≥ {TARGET_RPS:,.0f}: {verdict(rps >= TARGET_RPS)})"
              + (f"; {load_note}" if load_note else ""))
    else:
        print("cached KPI load: not measured")
    print(
        f"server peak RSS (VmHWM): {hwm_mib:,.0f} MiB, now {rss_mib:,.0f} MiB "
        f"(target ≤ {TARGET_RSS_MIB:,.0f}: {verdict(hwm_mib <= TARGET_RSS_MIB)})"
    )
    if disagreements:
        print(f"FAILED: answers disagree for {', '.join(sorted(bad))}")
        return 1
    print("all four answers agree with DuckDB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
