#!/usr/bin/env python3
"""Records the InfluxQL golden set from a real InfluxDB 1.x server.

Starts `influxd` (the Debian package `influxdb`) on loopback with a throw-away data directory,
writes the data set below, runs every query through `/query?epoch=s` and writes the answers to
crates/gnomon/tests/golden/influxql_v1.json, which crates/gnomon/tests/influxql_golden.rs
replays against Gnomon. Run it again after changing the data or the queries:

    python3 scripts/record_influxql_golden.py
"""

import json
import os
import random
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

LP = """cpu,host=a,region=us usage=0.5,idle=10i 1700000000
cpu,host=b,region=us usage=1.5,idle=20i 1700000001
cpu,host=a,region=eu usage=2.5,idle=30i 1700000002
cpu,host=b,region=eu usage=3.5 1700000061
cpu,host=c,region=eu usage=-1.25,idle=5i 1700000125
cpu,region=us usage=10 1700000190
cpu,host=a,region=us usage=4.5,idle=40i 1700000300
mem,host=a free=100i,used=1.5 1700000003
mem,host=b free=90i 1700000063
mem,host=a free=80i,used=2.5 1700000123
"""

# A second database for tz() across changes of UTC offset: Europe/Paris went from +01:00 to
# +02:00 at 2025-03-30T01:00:00Z and back at 2025-10-26T01:00:00Z.
DST_LP = "".join(
    f"power,site={site} v={(i * 7 + k * 3) % 11 + 0.5},n={(i * 5 + k) % 9}i {start + i * 5 * 3600 + k * 1800}\n"
    for start in (1743120000, 1761264000)  # 2025-03-28T00:00:00Z, 2025-10-24T00:00:00Z
    for i in range(24)
    for k, site in enumerate(("a", "b"))
)
DST = {"db": "dst"}
DST_TEXT = {"db": "dst", "epoch": None}
SPRING = "time >= '2025-03-28T00:00:00Z' AND time < '2025-04-02T00:00:00Z'"
FALL = "time >= '2025-10-24T00:00:00Z' AND time < '2025-10-29T00:00:00Z'"

R = "time >= 1700000000s AND time < 1700000400s"
Q = [
 "SELECT usage FROM cpu",
 "SELECT * FROM cpu",
 "SELECT * FROM mem",
 "SELECT usage, host FROM cpu",
 "SELECT usage, idle FROM cpu WHERE host = 'a'",
 "SELECT idle FROM cpu",
 "SELECT usage FROM cpu WHERE region =~ /^e/",
 "SELECT usage FROM cpu WHERE host !~ /a/",
 "SELECT usage FROM cpu WHERE host = ''",
 "SELECT usage FROM cpu WHERE host != 'a'",
 "SELECT usage FROM cpu WHERE usage > 1 AND usage < 4",
 "SELECT usage FROM cpu WHERE usage > 3 OR host = 'b'",
 "SELECT usage * 2 + idle FROM cpu",
 "SELECT usage FROM cpu GROUP BY host",
 "SELECT usage FROM cpu GROUP BY host, region",
 "SELECT * FROM cpu GROUP BY *",
 "SELECT usage FROM cpu GROUP BY nosuchtag",
 "SELECT usage FROM cpu ORDER BY time DESC",
 "SELECT usage FROM cpu LIMIT 2",
 "SELECT usage FROM cpu LIMIT 2 OFFSET 1",
 "SELECT usage FROM cpu GROUP BY host LIMIT 1",
 "SELECT usage FROM cpu GROUP BY host ORDER BY time DESC LIMIT 1",
 "SELECT free FROM cpu, mem",
 "SELECT usage, free FROM cpu, mem",
 "SELECT free FROM /m.*/",
 "SELECT count(usage) FROM cpu",
 "SELECT count(usage), sum(usage), mean(usage) FROM cpu",
 "SELECT count(idle), sum(idle), mean(idle) FROM cpu",
 "SELECT median(usage), spread(usage), stddev(usage) FROM cpu",
 "SELECT count(distinct(host)) FROM cpu",
 "SELECT max(usage) FROM cpu",
 "SELECT min(usage) FROM cpu",
 "SELECT first(usage) FROM cpu",
 "SELECT last(usage) FROM cpu",
 "SELECT max(usage) FROM cpu GROUP BY host",
 "SELECT last(idle) FROM cpu GROUP BY host",
 "SELECT max(usage), min(usage) FROM cpu",
 "SELECT mean(usage) FROM cpu GROUP BY host",
 f"SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(none)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(0)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(previous)",
 f"SELECT max(usage) FROM cpu WHERE {R} GROUP BY time(2m, 30s)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m), host",
 f"SELECT count(usage), max(usage) FROM cpu WHERE {R} GROUP BY time(1m), host fill(none)",
 f"SELECT sum(free) FROM mem WHERE {R} GROUP BY time(1m)",
 f"SELECT count(*) FROM cpu",
 f"SELECT mean(*) FROM cpu",
 f"SELECT max(/us/) FROM cpu",
 "SELECT difference(usage) FROM cpu",
 "SELECT non_negative_difference(usage) FROM cpu",
 "SELECT derivative(usage) FROM cpu",
 "SELECT derivative(usage, 1m) FROM cpu GROUP BY host",
 "SELECT non_negative_derivative(usage, 1s) FROM cpu",
 "SELECT elapsed(usage, 1s) FROM cpu",
 "SELECT cumulative_sum(usage) FROM cpu",
 "SELECT moving_average(usage, 3) FROM cpu",
 f"SELECT derivative(mean(usage), 1m) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT difference(max(usage)) FROM cpu WHERE {R} GROUP BY time(1m) fill(0)",
 f"SELECT non_negative_derivative(max(free)) FROM mem WHERE {R} GROUP BY time(1m)",
 "SELECT usage FROM cpu WHERE time > 1700000100s",
 "SELECT usage FROM cpu WHERE time >= '2023-11-14T22:13:21Z' AND time <= '2023-11-14T22:15:00Z'",
 "SELECT usage FROM cpu WHERE time = 1700000001000000000",
 "SELECT usage FROM cpu WHERE time > now() - 1h",
 "SELECT usage FROM cpu WHERE time < 1700000001s OR time > 1700000200s",
 "SELECT abs(usage) FROM cpu",
 "SELECT usage::integer FROM cpu",
 "SELECT host::tag, usage::field FROM cpu",
 "SELECT usage AS u, usage FROM cpu",
 "SELECT mean(usage), mean(usage) FROM cpu",
 "SELECT mean(usage) AS m FROM cpu",
 "SELECT mean(usage) * 2 FROM cpu",
 "SHOW MEASUREMENTS",
 "SHOW MEASUREMENTS WITH MEASUREMENT =~ /c.*/",
 "SHOW TAG KEYS",
 "SHOW TAG KEYS FROM cpu",
 "SHOW TAG VALUES WITH KEY = host",
 "SHOW TAG VALUES FROM cpu WITH KEY IN (host, region)",
 "SHOW TAG VALUES WITH KEY =~ /reg/ WHERE host = 'a'",
 "SHOW FIELD KEYS",
 "SHOW FIELD KEYS FROM mem",
 "SELECT count(usage), usage FROM cpu",
 "SELECT usage FROM nosuch",
 "SELECT usage FROM cpu WHERE host = 'zzz'",
 "SELECT mean(usage) FROM cpu WHERE host = 'zzz'",
]

Q += [
 "SELECT * FROM cpu WHERE usage > 3",
 "SELECT usage FROM cpu WHERE host = 'a' AND time > 1700000001s",
 "SELECT mean(usage) FROM cpu GROUP BY region",
 "SELECT first(usage), last(usage) FROM cpu",
 "SELECT used FROM mem",
 "SELECT free, used FROM mem",
 f"SELECT max(usage) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(none) LIMIT 2",
 "SELECT usage FROM cpu WHERE region = 'us' AND (host = 'a' OR host = 'b')",
 "SELECT usage FROM cpu WHERE usage = 2.5",
 "SELECT usage FROM cpu WHERE idle = 10",
 "SELECT usage FROM cpu LIMIT 1 OFFSET 10",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) ORDER BY time DESC",
 "SELECT stddev(idle) FROM cpu",
 "SELECT usage FROM cpu WHERE time >= '2023-11-14 22:13:21'",
 "SELECT usage FROM cpu WHERE region =~ /us|eu/ GROUP BY region",
 "SELECT elapsed(free, 1m) FROM mem",
 f"SELECT moving_average(mean(usage), 2) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT cumulative_sum(max(usage)) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(100)",
 f"SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(2m), region",
 f"SELECT last(usage) FROM cpu WHERE {R} GROUP BY time(1m), host fill(none)",
 "SELECT usage FROM cpu WHERE host =~ /^(a|b)$/",
 "SELECT * FROM cpu LIMIT 3",
 "SELECT * FROM cpu, mem",
 "SHOW TAG VALUES FROM mem WITH KEY = host",
 "SHOW MEASUREMENTS LIMIT 1",
 "SHOW FIELD KEYS FROM cpu",
 "SHOW TAG KEYS FROM /m.*/",
 "SELECT median(idle) FROM cpu GROUP BY region",
 "SELECT spread(free) FROM mem",
 "SELECT min(free), max(free) FROM mem",
 "SELECT count(free) FROM mem WHERE host = 'b'",
 "SELECT sum(usage) FROM cpu WHERE time > 1700000100s GROUP BY host",
 "SELECT max(usage) - min(usage) FROM cpu",
 "SELECT usage FROM cpu WHERE usage < 0 OR usage > 4",
 "SELECT idle / 10 FROM cpu",
 "SELECT mean(idle) FROM cpu WHERE host = 'a'",
]

Q += [
 "SELECT percentile(usage, 50) FROM cpu",
 "SELECT percentile(usage, 90), percentile(usage, 5), percentile(usage, 100) FROM cpu",
 "SELECT percentile(idle, 75) FROM cpu GROUP BY host",
 f"SELECT percentile(usage, 50) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT percentile(usage, 95) FROM cpu WHERE {R} GROUP BY time(2m) fill(none)",
]

Q += [
 "SELECT top(usage, 3) FROM cpu",
 "SELECT bottom(usage, 2) FROM cpu",
 "SELECT top(usage, 2) FROM cpu GROUP BY region",
 "SELECT top(usage, host, 2) FROM cpu",
 "SELECT bottom(idle, host, 5) FROM cpu",
 f"SELECT top(usage, 1) FROM cpu WHERE {R} GROUP BY time(2m)",
 "SELECT top(usage, 10) FROM cpu WHERE host = 'a'",
]

Q += [
 "SELECT distinct(host) FROM cpu",
 "SELECT distinct(idle) FROM cpu",
 "SELECT distinct(usage) FROM cpu GROUP BY region",
 "SELECT DISTINCT usage FROM cpu WHERE time > 1700000050s",
 "SELECT count(distinct(usage)) FROM cpu",
 "SELECT mode(region) FROM cpu",
 "SELECT mode(idle) FROM cpu",
 "SELECT mode(usage) FROM cpu GROUP BY host",
 "SELECT mode(free) FROM mem",
]

# Subqueries: the inner result (its tags as group keys) is the outer query's input; the inner
# query inherits the outer time range, GROUP BY tags and (when it has none) interval.
Q += [
 f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m), host)",
 f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m), host) GROUP BY host",
 f"SELECT mean(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m), host) WHERE {R} GROUP BY time(2m)",
 f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m), host) WHERE {R} GROUP BY time(2m)",
 f"SELECT mean FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m))",
 f"SELECT mean FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(0))",
 f"SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu) WHERE {R} GROUP BY time(1m)",
 f"SELECT last(m) FROM (SELECT max(usage) AS m FROM cpu WHERE {R} GROUP BY time(1m))",
 "SELECT * FROM (SELECT usage, host FROM cpu)",
 "SELECT * FROM (SELECT usage FROM cpu GROUP BY host)",
 "SELECT usage FROM (SELECT usage FROM cpu GROUP BY host) WHERE host = 'a'",
 "SELECT usage FROM (SELECT usage FROM cpu) WHERE host = 'a'",
 "SELECT usage FROM (SELECT usage FROM cpu) GROUP BY *",
 "SELECT * FROM (SELECT usage FROM cpu GROUP BY region) GROUP BY *",
 "SELECT sum(usage) FROM (SELECT usage FROM cpu WHERE usage > 1)",
 "SELECT usage FROM (SELECT usage FROM cpu WHERE usage > 2) WHERE usage < 5",
 "SELECT count(free) FROM (SELECT free FROM mem GROUP BY host), cpu",
 "SELECT max(v) FROM (SELECT usage AS v FROM cpu), (SELECT free AS v FROM mem)",
 "SELECT mean(m) FROM (SELECT max(usage) AS m FROM cpu GROUP BY host)",
 "SELECT sum(max) FROM (SELECT max(usage) FROM cpu GROUP BY host)",
 "SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu) GROUP BY host",
 "SELECT m FROM (SELECT mean(usage) AS m FROM cpu) GROUP BY host",
 "SELECT mean(usage) FROM (SELECT usage FROM cpu GROUP BY region) GROUP BY host",
 "SELECT mean(idle) FROM (SELECT * FROM cpu) GROUP BY region",
 "SELECT max(usage) FROM (SELECT * FROM cpu)",
 "SELECT count(usage) FROM (SELECT usage, idle FROM cpu WHERE idle > 10)",
 "SELECT usage FROM (SELECT usage FROM cpu) WHERE time > 1700000100s",
 "SELECT m FROM (SELECT mean(usage) AS m FROM cpu) WHERE time > 1700000100s",
 "SELECT m FROM (SELECT mean(usage) AS m FROM cpu WHERE time > 1700000100s) WHERE time > 1700000200s",
 f"SELECT mean(usage) FROM (SELECT usage FROM cpu) WHERE {R} GROUP BY time(2m)",
 "SELECT u FROM (SELECT usage * 2 AS u FROM cpu WHERE host = 'b')",
 "SELECT usage FROM (SELECT usage FROM cpu LIMIT 2)",
 "SELECT usage FROM (SELECT usage FROM cpu) LIMIT 2",
 "SELECT usage FROM (SELECT usage FROM cpu) ORDER BY time DESC",
 "SELECT usage FROM (SELECT usage FROM cpu ORDER BY time DESC)",
 "SELECT derivative(usage) FROM (SELECT usage FROM cpu)",
 "SELECT usage FROM (SELECT usage FROM nosuch)",
 "SELECT mean FROM (SELECT mean(usage) FROM /.*/)",
 "SELECT max(m) FROM (SELECT max(usage) AS m FROM (SELECT usage FROM cpu GROUP BY host) GROUP BY host)",
 "SELECT usage FROM (SELECT usage FROM cpu) WHERE m > 1",
 "SELECT usage FROM cpu WHERE nosuch != 1",
 "SELECT usage FROM cpu WHERE nosuch < 1 OR host = 'b'",
 "SELECT count(free) FROM mem WHERE nosuch > 1 GROUP BY host",
 "SELECT * FROM (SELECT mean(usage), max(idle) FROM cpu GROUP BY host)",
 "SELECT * FROM (SELECT mean(usage), max(idle) FROM cpu GROUP BY host, region)",
 "SELECT mean FROM (SELECT mean(usage) FROM cpu GROUP BY region) ORDER BY time DESC",
 f"SELECT m FROM (SELECT max(usage) AS m FROM cpu WHERE {R} GROUP BY time(2m), host) LIMIT 3",
 f"SELECT * FROM (SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(2m), region fill(none))",
 "SELECT count(*) FROM (SELECT usage, idle FROM cpu)",
 "SELECT mean(*) FROM (SELECT usage, idle FROM cpu GROUP BY region)",
 "SELECT top(usage, host, 2) FROM (SELECT usage FROM cpu GROUP BY host)",
 f"SELECT count(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(0))",
 "SELECT * FROM (SELECT top(usage, 3) FROM cpu)",
 "SELECT free FROM (SELECT * FROM /.*/) WHERE free > 85",
 f"SELECT cumulative_sum(m) FROM (SELECT max(usage) AS m FROM cpu WHERE {R} GROUP BY time(1m) fill(0))",
 "SELECT usage FROM (SELECT usage FROM cpu WHERE host = 'a'), (SELECT usage FROM cpu WHERE host = 'b')",
 "SELECT percentile(m, 50) FROM (SELECT max(usage) AS m FROM cpu GROUP BY host)",
 "SELECT mode(host) FROM (SELECT usage, host FROM cpu)",
 f"SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu) WHERE {R} GROUP BY time(2m, 30s)",
 f"SELECT integral(m) FROM (SELECT max(usage) AS m FROM cpu WHERE {R} GROUP BY time(1m))",
]

# fill(linear): straight lines between the known windows of a series, nothing outside them.
Q += [
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(linear)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(30s) fill(linear)",
 f"SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(30s) fill(linear)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(30s), host fill(linear)",
 f"SELECT sum(free) FROM mem WHERE {R} GROUP BY time(20s) fill(linear)",
 "SELECT mean(usage) FROM cpu WHERE time < 1700000400s GROUP BY time(30s) fill(linear)",
 "SELECT sum(free) FROM mem WHERE time < 1700000400s GROUP BY time(20s), host fill(linear)",
 f"SELECT max(idle), min(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(linear)",
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(linear) ORDER BY time DESC",
 f"SELECT derivative(mean(usage)) FROM cpu WHERE {R} GROUP BY time(30s) fill(linear)",
 f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(30s) fill(linear))",
 f"SELECT derivative(mean(usage)) FROM cpu WHERE {R} GROUP BY time(30s)",
 f"SELECT non_negative_derivative(mean(usage)) FROM cpu WHERE {R} GROUP BY time(30s)",
 "SELECT sum(free) FROM mem WHERE time < 1700000400s GROUP BY time(20s), host",
 "SELECT sum(free) FROM mem WHERE time < 1700000400s GROUP BY time(20s), host fill(0)",
]

# integral(): trapezoids between consecutive points; with GROUP BY time() a trapezoid crossing
# a window end is split at the interpolated value.
Q += [
 "SELECT integral(usage) FROM cpu",
 "SELECT integral(usage, 1m) FROM cpu",
 f"SELECT integral(usage) FROM cpu WHERE {R}",
 "SELECT integral(usage) FROM cpu WHERE host = 'c'",
 "SELECT integral(free, 1h) FROM mem",
 "SELECT integral(*) FROM cpu",
 "SELECT integral(usage) FROM cpu GROUP BY host",
 f"SELECT integral(usage) FROM cpu WHERE {R} GROUP BY time(1m)",
 f"SELECT integral(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(none)",
 f"SELECT integral(usage, 1m) FROM cpu WHERE {R} GROUP BY time(2m)",
 f"SELECT integral(usage) FROM cpu WHERE {R} GROUP BY time(30s)",
 f"SELECT integral(usage) FROM cpu WHERE {R} GROUP BY time(1m, 30s)",
 f"SELECT integral(free) FROM mem WHERE {R} GROUP BY time(1m)",
 f"SELECT integral(free) FROM mem WHERE {R} GROUP BY time(1m), host",
 "SELECT integral(usage) FROM cpu WHERE host = 'a' AND time < 1700000400s GROUP BY time(100s)",
 "SELECT integral(mean) FROM (SELECT mean(usage) FROM cpu WHERE time < 1700000400s GROUP BY time(1m))",
]

# tz(): windows at local multiples of the interval, times written with the zone's offset
# (these cases are recorded and replayed without `epoch`, as RFC 3339 text).
TEXT = {"epoch": None}
Q += [
 ("SELECT usage FROM cpu WHERE host = 'a' tz('Asia/Kolkata')", TEXT),
 "SELECT usage FROM cpu WHERE host = 'a' tz('Asia/Kolkata')",
 (f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata')", TEXT),
 f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata')",
 (f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kathmandu')", TEXT),
 (f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1d) tz('America/New_York')", TEXT),
 f"SELECT count(usage) FROM cpu WHERE {R} GROUP BY time(1d) tz('Australia/Sydney')",
 (f"SELECT max(usage) FROM cpu WHERE {R} GROUP BY time(2m) tz('America/St_Johns')", TEXT),
 (f"SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1m) fill(linear) tz('Europe/Paris')", TEXT),
 ("SELECT mean(usage) FROM cpu tz('Europe/Paris')", TEXT),
 ("SELECT max(usage) FROM cpu tz('Europe/Paris')", TEXT),
 ("SELECT usage FROM cpu WHERE host = 'b' tz('UTC')", TEXT),
 ("SELECT usage FROM cpu WHERE time >= '2023-11-15 03:44:21' tz('Asia/Kolkata')", TEXT),
 (f"SELECT integral(usage) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata')", TEXT),
 (f"SELECT top(usage, 2) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata')", TEXT),
 ("SELECT usage FROM cpu WHERE host = 'a'", TEXT),
 ("SELECT usage FROM cpu WHERE host = 'b' tz('Europe/London')", TEXT),
 (f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1h)) tz('Asia/Kolkata')", TEXT),
 (f"SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata'))", TEXT),
 (f"SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu) WHERE {R} GROUP BY time(1h) tz('Asia/Kolkata')", TEXT),
]

# tz() windows across a change of UTC offset (the "dst" database): 23- and 25-hour days.
Q += [
 (f"SELECT count(v), sum(v) FROM power WHERE {SPRING} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT count(v), sum(v) FROM power WHERE {SPRING} GROUP BY time(1d) tz('Europe/Paris')", DST),
 (f"SELECT count(v), max(n) FROM power WHERE {FALL} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT mean(v) FROM power WHERE {SPRING} GROUP BY time(1d), site tz('Europe/Paris')", DST_TEXT),
 (f"SELECT mean(v) FROM power WHERE {FALL} GROUP BY time(12h) fill(0) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT sum(n) FROM power WHERE {SPRING} GROUP BY time(6h) fill(linear) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT max(v) FROM power WHERE {FALL} GROUP BY time(1h) LIMIT 30 tz('Europe/Paris')", DST_TEXT),
 (f"SELECT count(v) FROM power WHERE {SPRING} GROUP BY time(1d) tz('America/New_York')", DST_TEXT),
 (f"SELECT derivative(mean(v)) FROM power WHERE {SPRING} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT integral(v, 1h) FROM power WHERE {FALL} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT top(v, 1) FROM power WHERE {SPRING} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 (f"SELECT max(m) FROM (SELECT mean(v) AS m FROM power WHERE {FALL} GROUP BY time(6h), site) WHERE {FALL} GROUP BY time(1d) tz('Europe/Paris')", DST_TEXT),
 ("SELECT count(v) FROM power WHERE time < '2025-04-02T00:00:00Z' GROUP BY time(1d) fill(none) tz('Europe/Paris')", DST_TEXT),
]


def request(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        # Query errors come back as 400 with the v1 error body: that is the answer.
        return e.code, e.read().decode()


def main():
    tmp = tempfile.mkdtemp(prefix="influxdb-golden-")
    port = random.randint(20000, 40000)
    conf = os.path.join(tmp, "influxdb.conf")
    with open(conf, "w") as f:
        f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:{port + 1}"
[meta]
  dir = "{tmp}/meta"
[data]
  dir = "{tmp}/data"
  wal-dir = "{tmp}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
""")
    server = subprocess.Popen(["influxd", "-config", conf], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                request(base + "/ping")
                break
            except OSError:
                time.sleep(0.1)
        version = urllib.request.urlopen(base + "/ping").headers.get("X-Influxdb-Version")
        request(base + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE golden"}).encode())
        request(base + "/write?db=golden&precision=s", LP.encode())
        request(base + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE dst"}).encode())
        request(base + "/write?db=dst&precision=s", DST_LP.encode())
        cases = []
        for q in Q:
            # A case is a query, or (query, parameters) where None drops a default one.
            q, overrides = q if isinstance(q, tuple) else (q, {})
            params = {"db": "golden", "q": q, "epoch": "s", **overrides}
            params = {k: v for k, v in params.items() if v is not None}
            url = base + "/query?" + urllib.parse.urlencode(params)
            _, body = request(url)
            case = {"q": q, "expected": json.loads(body)}
            if overrides:
                case["params"] = overrides
            cases.append(case)
    finally:
        server.terminate()
        server.wait()
    out = os.path.join(os.path.dirname(__file__), "..", "crates", "gnomon", "tests", "golden",
                       "influxql_v1.json")
    with open(out, "w") as f:
        json.dump({"recorded_with": f"InfluxDB {version}", "data": LP, "data_dst": DST_LP,
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases from InfluxDB {version} -> {out}")


if __name__ == "__main__":
    main()
