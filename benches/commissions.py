"""Driver of benches/commissions.sh: cip's reconciliation against DuckDB's
normalise-and-join on the same Parquet files, and calculateCommissions of
1,000 terms over HTTP. Only the standard library plus `duckdb`.

Exit status 1 when cip's counts disagree with DuckDB's join (lines matched
to a booked row, rows without a line, lines without a row) or the API
answers with errors; missed targets are reported, not failures.
"""

import argparse
import http.client
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse

import duckdb

TARGET_SECONDS = 5.0
TARGET_RATIO = 1.0
TARGET_P95_MS = 100.0
CALC_TERMS = 1000
CALC_REQUESTS = 50

# The normal form of docs/commissions.md in SQL: upper case, keep letters
# and digits, then drop the leading zeros of every run of digits.
NORM = (
    "regexp_replace(regexp_replace(upper({col}), '[^A-Z0-9]', '', 'g'), "
    "'(^|[A-Z])0+([0-9])', '\\1\\2', 'g')"
)


def cip(*args):
    out = subprocess.run([os.environ["CIP"], *args], check=True, capture_output=True, text=True)
    return out.stdout


def files_of(lake):
    manifest = json.loads(cip("lake", "files", "--lake", lake))
    tenants = sorted({f["tenant_id"] for f in manifest["tables"]["statement_lines"]})
    if len(tenants) != 1:
        sys.exit(f"expected one tenant, found {tenants}")
    tenant = tenants[0]
    pick = lambda t: [os.path.join(lake, f["path"]) for f in manifest["tables"][t] if f["tenant_id"] == tenant]
    return tenant, {t: pick(t) for t in ("statement_lines", "commissions", "policies")}


def duck_join(files):
    """Join rows with both sides, booked rows without a line, lines without a row, lines: the
    reconciliation's join (carrier, period, normalised number, kind)
    restricted, like cip's, to statements that have lines."""
    con = duckdb.connect()
    lst = lambda t: "[" + ",".join(f"'{p}'" for p in files[t]) + "]"
    sql = f"""
    with l as (
      select line_id, carrier_id, period, kind, commission_amount, {NORM.format(col='policy_number')} as n
      from read_parquet({lst('statement_lines')})),
    s as (select distinct carrier_id, period from l),
    e as (
      select c.commission_id, c.carrier_id, strftime(c.transaction_date, '%Y-%m') as period, c.kind,
             c.gross_commission, {NORM.format(col='p.policy_number')} as n
      from read_parquet({lst('commissions')}) c
      left join read_parquet({lst('policies')}) p on c.policy_id = p.policy_id
      where c.kind <> 'override'),
    es as (select e.* from e semi join s on e.carrier_id = s.carrier_id and e.period = s.period)
    select count(*) filter (where l.line_id is not null and es.commission_id is not null) as paired,
           count(*) filter (where l.line_id is null) as rows_without_line,
           count(*) filter (where es.commission_id is null) as lines_without_row,
           (select count(*) from l) as lines
    from l full outer join es
      on l.carrier_id = es.carrier_id and l.period = es.period and l.n = es.n and l.kind = es.kind
    """
    t0, c0 = time.perf_counter(), time.process_time()
    row = con.execute(sql).fetchone()
    return time.perf_counter() - t0, time.process_time() - c0, row


def cpu_of_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cip_reconcile(lake, tenant):
    """Wall time, CPU time (user + sys of the whole process) and the answer."""
    t0, c0 = time.perf_counter(), cpu_of_children()
    out = json.loads(cip("reconcile", "--lake", lake, "--tenant", tenant, "--json"))
    return time.perf_counter() - t0, cpu_of_children() - c0, out


def counts_of(out):
    """The same counts from cip's answer: a line whose key has no booked row
    is UNEXPECTED, a row whose key has no line MISSING. (A repeated line
    joins its row twice in SQL and is a DUPLICATE in cip; on the bench's
    data no key has more lines of a kind than rows except duplicates.)"""
    disc = out["discrepancies"]
    by = lambda t: sum(1 for d in disc if d["type"] == t)
    return {"lines": out["statement_lines"], "rows_without_line": by("MISSING"), "lines_without_row": by("UNEXPECTED")}


# ---------------------------------------------------------------------------


def serve(lake, work, tenant):
    key = cip("keys", "create", "--lake", lake, "--tenant", tenant, "--scopes", "analytics:read").strip()
    log = os.path.join(work, "serve.log")
    proc = subprocess.Popen([os.environ["CIP"], "serve", "--lake", lake, "--addr", "127.0.0.1:0"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"cip serve exited; its log:\n{open(log).read()}")
        m = re.search(r"http://127\.0\.0\.1:\d+", open(log).read())
        if m:
            url = m.group(0)
            u = urllib.parse.urlsplit(url)
            try:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    return proc, url, key
            except OSError:
                pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("cip serve not ready")


def terms(files):
    """CALC_REQUESTS × CALC_TERMS policy terms of the tenant, as
    calculateCommissions inputs (each request its own terms, so that no
    answer comes from the result cache)."""
    con = duckdb.connect()
    lst = "[" + ",".join(f"'{p}'" for p in files["policies"]) + "]"
    rows = con.execute(f"""
      select carrier_id, line_of_business, renewal_of is not null, cast(premium as varchar),
             cast(effective_date as varchar), cast(expiration_date as varchar), agent_id,
             cast(cancellation_date as varchar)
      from read_parquet({lst}) order by policy_id limit {CALC_TERMS * CALC_REQUESTS}""").fetchall()
    out = []
    for carrier, line, renewal, premium, eff, exp, agent, cancel in rows:
        t = {"carrierId": carrier, "lineOfBusiness": line, "kind": "RENEWAL" if renewal else "NEW",
             "premium": premium, "effectiveDate": eff, "expirationDate": exp, "agentId": agent}
        if cancel:
            t["cancellationDate"] = cancel
        out.append(t)
    return out


def calc_latency(url, key, inputs):
    q = ("query Calc($inputs: [CommissionInput!]!) { calculateCommissions(inputs: $inputs) "
         "{ index calculation { rate commission { gross producer agency overrideAmount } chargeback { amounts { gross } } } error { code } } }")
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    times = []
    errors = results = 0
    for i in range(CALC_REQUESTS):
        chunk = inputs[i * CALC_TERMS:(i + 1) * CALC_TERMS]
        body = json.dumps({"query": q, "variables": {"inputs": chunk}}).encode()
        t0 = time.perf_counter()
        conn.request("POST", "/graphql", body, {"content-type": "application/json", "x-api-key": key})
        r = conn.getresponse()
        data = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        answer = json.loads(data)
        if r.status != 200 or "errors" in answer:
            sys.exit(f"calculateCommissions failed: {data[:500]!r}")
        got = answer["data"]["calculateCommissions"]
        if len(got) != len(chunk):
            sys.exit(f"{len(got)} results for {len(chunk)} inputs")
        results += len(got)
        errors += sum(1 for x in got if x["error"])
    times.sort()
    p95 = times[int(round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(body), errors, results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tenant, files = files_of(a.lake)

    duck, duck_cpu, cips = [], [], []
    for i in range(a.runs):
        wall, cpu, out = cip_reconcile(a.lake, tenant)
        t = out["timings"]
        cips.append((t["total_ms"] / 1000, wall, cpu))
        d, dc, row = duck_join(files)
        duck.append(d)
        duck_cpu.append(dc)
        print(f"run {i + 1}: cip reconcile {t['total_ms'] / 1000:.2f} s in process (read {t['read_ms']} ms, "
              f"match {t['match_ms']} ms, write {t['write_ms']} ms), {wall:.2f} s wall, {cpu:.2f} s CPU; "
              f"duckdb join {d:.2f} s, {dc:.2f} s CPU")
    _paired, rows_without_line, lines_without_row, lines = row
    duck_counts = {"lines": lines, "rows_without_line": rows_without_line, "lines_without_row": lines_without_row}
    cip_counts = counts_of(out)
    by_type = {}
    for d in out["discrepancies"]:
        by_type[d["type"]] = by_type.get(d["type"], 0) + 1
    print(f"tenant {tenant}: {out['statement_lines']:,} statement lines, {out['booked_rows']:,} booked rows, "
          f"{len(out['periods'])} statements; discrepancies {by_type}")
    print(f"counts cip {cip_counts} / duckdb {duck_counts}")
    cip_in = statistics.median(c[0] for c in cips)
    cip_wall = statistics.median(c[1] for c in cips)
    duck_med = statistics.median(duck)
    ratio_in, ratio_wall = cip_in / duck_med, cip_wall / duck_med
    cpu_ratio = statistics.median(c[2] for c in cips) / statistics.median(duck_cpu)
    print(f"CPU (user + sys): cip {statistics.median(c[2] for c in cips):.2f} s for the whole process, "
          f"duckdb {statistics.median(duck_cpu):.2f} s for the query: {cpu_ratio:.2f}x; load average {os.getloadavg()[0]:.1f}")
    print(f"reconcile: cip {cip_in:.2f} s in process ({cip_wall:.2f} s wall incl. start and lake open), "
          f"duckdb {duck_med:.2f} s; ratio {ratio_in:.2f}x in process, {ratio_wall:.2f}x wall "
          f"(targets <= {TARGET_SECONDS} s, <= {TARGET_RATIO}x): "
          f"{'met' if cip_in <= TARGET_SECONDS and ratio_in <= TARGET_RATIO else 'MISSED'}")

    proc, url, key = serve(a.lake, a.work, tenant)
    try:
        p50, p95, size, errors, n = calc_latency(url, key, terms(files))
    finally:
        proc.terminate()
        proc.wait()
    print(f"calculateCommissions of {CALC_TERMS} terms per request, {n} in all ({size / 1024:.0f} KiB request, {errors} refused inputs): "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {CALC_REQUESTS} requests "
          f"(target p95 <= {TARGET_P95_MS} ms): {'met' if p95 <= TARGET_P95_MS else 'MISSED'}")
    if cip_counts != duck_counts:
        sys.exit("cip's and DuckDB's counts disagree")


if __name__ == "__main__":
    main()
