#!/usr/bin/env python3
"""TSBS query latencies over a whole day of cpu-only data, Gnomon beside the peers (issue 4).

Usage: tsbs_day_bench.py --gnomon BINARY [--servers gnomon,influxdb1,victoriametrics]
                         [--hours 24] [--hosts 4000] [--iters 7] [--query NAME ...]
                         [--reuse DIR] [--keep] [--workdir DIR] [--json OUT]

A day of TSBS data is 34.56M lines (12 GB of text), more than is worth holding in a file or
in the driver's memory, so every server is fed straight from `../shared/bench/gen.py` in
5000-line requests, 4 at a time. Gnomon snapshots after every hour of data (so no buffer
holds a day) and is compacted at the end, as its background tasks would do on a server that
has run for a day; the peers get their own settle time. Then `../shared/bench/queries.py`
runs its TSBS query set, plus the three TSBS queries it lacks (`single-groupby-5-8-1`,
`cpu-max-all-8`, `double-groupby-all`, defined here the same way), in each query language a
server speaks, and the answers are compared across servers.

`--reuse DIR` starts Gnomon on a data dir kept by an earlier run (`--keep`), which skips
the load: the way to iterate on query speed. Prints a table and, with --json, the raw results.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BENCH = os.environ.get("SHARED_BENCH", os.path.join(HERE, "../../shared/bench"))
sys.path.insert(0, SHARED_BENCH)

from benchlib import post, stream_tsbs  # noqa: E402
import compare  # noqa: E402  (../shared/bench: server configs and process helpers)
import queries  # noqa: E402  (../shared/bench: the TSBS query set and answer check)

DB = "bench"
HOUR_NS = 3600 * 10**9

EXTRA = ["single-groupby-5-8-1", "cpu-max-all-8", "double-groupby-all"]
_base_build = queries.build


def build(name, meta, i, seed=0):
    """queries.build plus the TSBS queries it does not define, built the same way (random
    hosts and windows from the same seeded generator)."""
    if name not in EXTRA:
        return _base_build(name, meta, i, seed)
    import random

    rng = random.Random(f"{name}:{i}:{seed}")
    if name == "double-groupby-all":
        t0, t1 = queries._window(rng, meta, 12 * queries.HOUR)
        avgs = ", ".join(f"avg({f}) AS mean_{f}" for f in queries.FIELDS)
        means = ", ".join(f"mean({f}) AS mean_{f}" for f in queries.FIELDS)
        return {
            "influxql": (f"SELECT {means} FROM cpu WHERE time >= '{queries.rfc(t0)}' "
                         f"AND time < '{queries.rfc(t1)}' GROUP BY time(1h), hostname"),
            "sql": (f"SELECT date_bin(INTERVAL '1 hour', time) AS bucket, hostname, {avgs} FROM cpu "
                    f"WHERE time >= '{queries.rfc(t0)}' AND time < '{queries.rfc(t1)}' "
                    f"GROUP BY 1, 2 ORDER BY 2, 1"),
            "keys": ["hostname"], "vals": [f"mean_{f}" for f in queries.FIELDS], "sql_time": "bucket",
        }
    nf, hours, bucket, unit = {"single-groupby-5-8-1": (5, 1, "1 minute", "1m"),
                               "cpu-max-all-8": (10, 8, "1 hour", "1h")}[name]
    fields = queries.FIELDS[:nf]
    hosts = rng.sample(range(meta["hosts"]), 8)
    t0, t1 = queries._window(rng, meta, hours * queries.HOUR)
    sel = ", ".join(f"max({f}) AS max_{f}" for f in fields)
    either = " OR ".join(f"hostname = 'host_{h}'" for h in hosts)
    return {
        "influxql": (f"SELECT {sel} FROM cpu WHERE ({either}) AND time >= '{queries.rfc(t0)}' "
                     f"AND time < '{queries.rfc(t1)}' GROUP BY time({unit})"),
        "sql": (f"SELECT date_bin(INTERVAL '{bucket}', time) AS bucket, {sel} FROM cpu "
                f"WHERE ({either}) AND time >= '{queries.rfc(t0)}' AND time < '{queries.rfc(t1)}' "
                f"GROUP BY 1 ORDER BY 1"),
        "keys": [], "vals": [f"max_{f}" for f in fields], "sql_time": "bucket",
    }


queries.build = build


def day_meta(hosts, hours):
    start = 1451606400 * 10**9  # gen.py's default start, 2016-01-01T00:00:00Z
    return {"shape": "cpu-only", "measurement": "cpu", "fields": queries.FIELDS, "hosts": hosts,
            "start_ns": start, "end_ns": start + hours * HOUR_NS, "interval_ns": 10 * 10**9,
            "lines": hosts * 360 * hours}


class Server:
    """One server process started from `../shared/bench/servers.toml` (or Gnomon's command)."""

    def __init__(self, name, cfg, workdir, data_dir=None):
        self.name, self.cfg = name, cfg
        self.dir = tempfile.mkdtemp(prefix=f"day-{name}-", dir=workdir)
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.m = {"port": compare.free_port(), "port2": compare.free_port(), "dir": self.dir,
                  "data_dir": self.data_dir, "db": DB}
        for fn, content in (cfg.get("files") or {}).items():
            with open(os.path.join(self.dir, fn), "w") as f:
                f.write(compare.subst(compare.expand_env(content), self.m))
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.m['port']}"

    def start(self):
        cmd = compare.subst(compare.expand_env(self.cfg["start"]), self.m).strip()
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(["bash", "-c", "exec " + cmd], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True)
        health = compare.subst(compare.expand_env(self.cfg["health"]), self.m)
        deadline = time.time() + 300
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; log in {self.dir}")
            try:
                with urllib.request.urlopen(self.base + health, timeout=2):
                    break
            except Exception:
                if time.time() > deadline:
                    sys.exit(f"{self.name} not healthy")
                time.sleep(0.1)
        for s in self.cfg.get("setup") or []:
            method, _, path = compare.subst(compare.expand_env(s), self.m).partition(" ")
            req = urllib.request.Request(self.base + path.strip(), method=method, data=b"")
            urllib.request.urlopen(req, timeout=60).read()

    def write_url(self):
        return self.base + compare.subst(compare.expand_env(self.cfg["write_path"]), self.m)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def gnomon_config(binary):
    return {"start": (f"{binary} serve --http-bind 127.0.0.1:{{port}} --data-dir {{data_dir}} "
                      "--node-id bench --log-filter warn --compaction-check-interval 1h"),
            "health": "/health", "write_path": f"/api/v3/write_lp?db={DB}&precision=nanosecond",
            "query_langs": ["sql", "influxql"]}


def wait_quiet(path, quiet_s=5, max_s=300):
    """Waits until the size of `path` has not changed for `quiet_s` (background merges)."""
    last, since, end = None, time.time(), time.time() + max_s
    while time.time() < end:
        size = compare.disk_usage(path)
        if size != last:
            last, since = size, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(1)


def load_gnomon(server, hosts, hours):
    def snapshot(hour):
        post(server.base + "/api/v3/gnomon/snapshot")
        print(f"gnomon: hour {hour} loaded and snapshotted", file=sys.stderr, flush=True)

    took = stream_tsbs(server.write_url(), hosts, hours, snapshot)
    t = time.perf_counter()
    summary = json.loads(post(server.base + "/api/v3/gnomon/compact"))
    print(f"gnomon: compaction {summary} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    wait_quiet(server.data_dir)
    return took


def load_peer(server, hosts, hours):
    def progress(hour):
        print(f"{server.name}: hour {hour} loaded", file=sys.stderr, flush=True)

    took = stream_tsbs(server.write_url(), hosts, hours, progress)
    wait_quiet(server.data_dir, quiet_s=10, max_s=600)
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gnomon", help="the gnomon binary")
    ap.add_argument("--servers", default="gnomon,influxdb1,victoriametrics")
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--hosts", type=int, default=4000)
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--query", action="append")
    ap.add_argument("--reuse", help="gnomon data dir kept by an earlier --keep run (no load)")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--json")
    a = ap.parse_args()
    meta = day_meta(a.hosts, a.hours)
    names = a.query or queries.QUERIES + EXTRA
    configs = compare.load_config(os.path.join(SHARED_BENCH, "servers.toml"))
    results, load_s = {}, {}
    for name in a.servers.split(","):
        if name == "gnomon":
            if not a.gnomon:
                sys.exit("--gnomon BINARY is required")
            server = Server(name, gnomon_config(a.gnomon), a.workdir, a.reuse)
        else:
            ok, why = compare.available(name, configs[name])
            if not ok:
                print(f"skipping {name}: {why}", file=sys.stderr)
                continue
            server = Server(name, configs[name], a.workdir)
        try:
            server.start()
            if name == "gnomon" and a.reuse:
                pass
            elif name == "gnomon":
                load_s[name] = load_gnomon(server, a.hosts, a.hours)
                # Queries then read files as a long-running server would: cold, not from
                # the cache the snapshots filled.
                server.stop()
                server.start()
            else:
                load_s[name] = load_peer(server, a.hosts, a.hours)
            for lang in compare.langs_of(server.cfg):
                res = queries.run_queries(server.base, lang, meta, iters=a.iters, names=names)
                results[f"{name}/{lang}"] = res
                print(f"== {name} {lang}\n{queries.format_table(res)}", file=sys.stderr, flush=True)
        finally:
            server.stop()
            if not a.keep:
                shutil.rmtree(server.dir, ignore_errors=True)
            else:
                print(f"{name}: kept {server.data_dir}", file=sys.stderr)
    mismatches = queries.compare_answers(results)
    print(json.dumps({"load_s": load_s, "mismatches": mismatches}, indent=1, default=str))
    for key, res in results.items():
        print(f"== {key}")
        print(queries.format_table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "load_s": load_s, "results": results,
                       "mismatches": mismatches}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
