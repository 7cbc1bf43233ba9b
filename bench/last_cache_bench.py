#!/usr/bin/env python3
"""Last-value cache benchmark (issue 6): 10k series, `SELECT * FROM last_cache('cpu') WHERE
hostname = 'host_42'` over HTTP versus the same question asked of the table.

Usage: last_cache_bench.py http://127.0.0.1:PORT [queries]

Reports, per variant, client-side p50/p99 (HTTP round trip on loopback) and the server-side
latency distribution from the `http_request_duration_seconds` histogram of /metrics (diffed
around each variant's run, so only its queries count; buckets double from 0.1 ms, so the
server-side percentiles are bucket upper bounds). Needs only `requests`.
"""

import re
import sys
import time

import requests

BASE = sys.argv[1].rstrip("/")
QUERIES = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
DB = "bench_lc"
SERIES = 10_000
POINTS = 10
S = requests.Session()


def histogram():
    text = S.get(f"{BASE}/metrics").text
    buckets = {}
    m = re.search(r'http_request_duration_seconds_sum\{path="/api/v3/query_sql"\} (\S+)', text)
    buckets["sum"] = float(m.group(1)) if m else 0.0
    for m in re.finditer(r'http_request_duration_seconds_bucket\{([^}]*)\} (\d+)', text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("path") != "/api/v3/query_sql" or "le" not in labels:
            continue
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        buckets[le] = int(m.group(2))
    return buckets


def server_percentiles(before, after):
    diff = sorted((le, after.get(le, 0) - before.get(le, 0)) for le in after if le != "sum")
    total = diff[-1][1]
    out = {}
    for p in (0.5, 0.99):
        for le, cum in diff:
            if cum >= p * total:
                out[p] = le
                break
    return total, out


def run(name, q):
    # warm up
    for _ in range(50):
        r = S.get(f"{BASE}/api/v3/query_sql", params={"db": DB, "q": q})
        assert r.status_code == 200, r.text
    first = r.json()
    before = histogram()
    lat = []
    for _ in range(QUERIES):
        t = time.perf_counter()
        r = S.get(f"{BASE}/api/v3/query_sql", params={"db": DB, "q": q})
        lat.append(time.perf_counter() - t)
        assert r.status_code == 200
    after = histogram()
    lat.sort()
    n, sp = server_percentiles(before, after)
    mean = (after["sum"] - before["sum"]) / n
    print(f"{name}: {QUERIES} queries; client p50 {lat[len(lat)//2]*1e3:.3f} ms, "
          f"p99 {lat[int(len(lat)*0.99)]*1e3:.3f} ms; server (/metrics, {n} requests) "
          f"p50 <= {sp[0.5]*1e3:g} ms, p99 <= {sp[0.99]*1e3:g} ms, mean {mean*1e3:.3f} ms")
    print(f"  answer: {first}")


def main():
    S.delete(f"{BASE}/api/v3/configure/database", params={"db": DB})
    r = S.post(f"{BASE}/api/v3/configure/table", json={
        "db": DB, "table": "cpu", "tags": ["hostname", "region", "datacenter"],
        "fields": [{"name": n, "type": "float64"} for n in
                   ("usage_user", "usage_system", "usage_idle", "usage_iowait")]})
    assert r.status_code == 200, r.text
    r = S.post(f"{BASE}/api/v3/configure/last_cache", json={"db": DB, "table": "cpu"})
    assert r.status_code == 201, r.text
    print("cache:", r.text)
    t0 = int(time.time()) - POINTS * 10
    t = time.perf_counter()
    for p in range(POINTS):
        lines = []
        for h in range(SERIES):
            lines.append(f"cpu,hostname=host_{h},region=r{h % 10},datacenter=dc{h % 50} "
                         f"usage_user={h % 100 + p},usage_system={p}.5,usage_idle={90 - p}.0,"
                         f"usage_iowait=0.{p} {t0 + p * 10}")
        r = S.post(f"{BASE}/api/v3/write_lp", params={"db": DB, "precision": "second"},
                   data="\n".join(lines))
        assert r.status_code == 204, r.text
    print(f"wrote {SERIES} series x {POINTS} points in {time.perf_counter() - t:.1f} s")
    run("last_cache", "SELECT * FROM last_cache('cpu') WHERE hostname = 'host_42'")
    run("plain SQL ", "SELECT * FROM cpu WHERE hostname = 'host_42' ORDER BY time DESC LIMIT 1")

    # The fixed cost of the query path (session, parsing, planning, encoding).
    run("SELECT 1  ", "SELECT 1")


main()
