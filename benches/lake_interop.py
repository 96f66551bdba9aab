"""Reads every table of a cip lake with the `deltalake` Python package (the
delta-rs binding from PyPI, an independent Delta reader) and compares row
counts and exact money sums with `cip lake stats --json`. Exit 1 on any
difference. Usage: lake_interop.py LAKE_URL STATS_JSON"""

import decimal
import json
import os
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable

lake, stats_file = sys.argv[1], sys.argv[2]
cip = json.load(open(stats_file))
options = {}
if lake.startswith("s3://"):
    options = {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "conditional_put": "etag",
    }
bad = 0
print(f"{'table':<22}{'cip rows':>10}{'delta rows':>12}  money sums (cip = deltalake)")
for t in cip["tables"]:
    dt = DeltaTable(f"{lake.rstrip('/')}/{t['table']}", storage_options=options)
    data = dt.to_pyarrow_table()
    sums = {}
    for col in t["money_sums"]:
        s = pc.sum(data[col]).as_py()
        sums[col] = f"{(s if s is not None else decimal.Decimal('0')):.2f}"
    same = data.num_rows == t["rows"] and sums == t["money_sums"]
    bad += not same
    shown = " ".join(f"{c}={v}" for c, v in sums.items())
    print(f"{t['table']:<22}{t['rows']:>10}{data.num_rows:>12}  {'ok ' if same else 'DIFF'} {shown}")
    if not same:
        print(f"   cip: {t['money_sums']}")
print("interop:", "PASS" if not bad else f"FAIL ({bad} tables differ)")
sys.stdout.flush()
# Leave without interpreter finalisation: deltalake's Rust runtime threads
# (object store clients) sometimes abort the process while Python tears down.
os._exit(1 if bad else 0)
