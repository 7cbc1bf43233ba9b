#!/usr/bin/env python3
"""Bytes per row on disk, before and after compaction, and restart time (issue 3).

Usage: storage_bench.py GNOMON_BINARY (LINE_PROTOCOL_FILE | --hours N [--hosts H])
                        [--workdir DIR] [--extra ARG ...]

Starts a fresh server (file object store, random port) in a temp dir under --workdir, loads
the file with ../shared/bench/load.py (override with LOAD_PY=...), forces a snapshot
(`POST /api/v3/gnomon/snapshot`). With --hours, the TSBS cpu-only data (../shared/bench/gen.py,
from 2016-01-01) is generated, loaded and snapshotted one hour at a time (so neither the
text nor the buffer of a whole day has to fit on disk or in memory). Then:

1. Parquet bytes on disk / rows, and `SELECT count(*), avg(usage_user) FROM cpu` time;
2. forces a compaction (`POST /api/v3/gnomon/compact`), waits until the merged-away files
   are gone, and measures the same again;
3. restarts the server and measures the time from start to the first answered query,
   before compaction (many small files) and after it; the compaction itself runs in a fresh
   process (files not in the Parquet cache), with its peak RSS (VmHWM reset just before).

Query times are the median of 5 runs after one warm-up. Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import free_port, post, status_bytes, stream_tsbs, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD_PY = os.environ.get("LOAD_PY", os.path.join(HERE, "../../shared/bench/load.py"))
DB = "bench"
QUERY = "SELECT count(*) AS c, avg(usage_user) AS a FROM cpu"


def sql(base, q):
    body = json.dumps({"db": DB, "q": q, "format": "json"}).encode()
    return json.loads(post(base + "/api/v3/query_sql", body))


def timed_query(base, runs=5):
    sql(base, QUERY)
    times, answer = [], None
    for _ in range(runs):
        t = time.perf_counter()
        answer = sql(base, QUERY)
        times.append(time.perf_counter() - t)
    return statistics.median(times), answer


def parquet_bytes(data_dir):
    total, files = 0, 0
    for root, _, names in os.walk(data_dir):
        for n in names:
            if n.endswith(".parquet"):
                total += os.path.getsize(os.path.join(root, n))
                files += 1
    return total, files


def reset_peak_rss(pid):
    """Resets the process's peak RSS (VmHWM) to its current RSS; returns that RSS."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status_bytes(pid, "VmRSS")


def peak_rss(pid):
    return status_bytes(pid, "VmHWM")


def start(binary, data_dir, port, extra, log):
    return subprocess.Popen(
        [binary, "serve", "--http-bind", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--node-id", "bench", "--object-store", "file",
         # The benchmark forces snapshot and compaction itself; the 1 s trigger only deletes
         # merged-away files (nothing is due: the data is old but was just written).
         "--snapshot-check-interval", "1s", "--compaction-check-interval", "1h", *extra],
        stdout=log, stderr=subprocess.STDOUT)


def restart(proc, args, data_dir, port, log):
    """Stops the server, starts it again; returns the process and when it was started."""
    proc.terminate()
    proc.wait(60)
    started = time.perf_counter()
    return start(args.binary, data_dir, port, args.extra, log), started


def first_answer(base, proc, started):
    """Seconds from `started` to the first answered query (polling /health first)."""
    wait_ready(base, proc)
    answer = sql(base, QUERY)
    took = round(time.perf_counter() - started, 3)
    print(f"first answer after restart: {answer}", file=sys.stderr)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("data", nargs="?")
    ap.add_argument("--hours", type=int)
    ap.add_argument("--hosts", type=int, default=4000)
    ap.add_argument("--workdir", default="/tmp")
    ap.add_argument("--extra", nargs="*", default=[])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gnomon-storage-", dir=args.workdir)
    if args.hours:
        lines = args.hours * args.hosts * 360
        name = f"cpu-{args.hosts}-{args.hours}h (generated hour by hour)"
    else:
        lines = json.load(open(args.data + ".meta.json"))["lines"]
        name = os.path.basename(args.data)
    data_dir = os.path.join(work, "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "server.log"), "ab")
    out = {"lines": lines, "data": name}
    proc = start(args.binary, data_dir, port, args.extra, log)
    try:
        wait_ready(base, proc)
        url = f"{base}/api/v3/write_lp?db={DB}&precision=nanosecond"
        load_s = snapshot_s = 0.0
        if args.hours:
            snapshot_times = []

            def snapshot(hour):
                t = time.perf_counter()
                snap = json.loads(post(base + "/api/v3/gnomon/snapshot"))
                snapshot_times.append(time.perf_counter() - t)
                print(f"hour {hour}: {snap}", file=sys.stderr, flush=True)

            load_s = stream_tsbs(url, args.hosts, args.hours, snapshot)
            snapshot_s = sum(snapshot_times)
        else:
            t = time.perf_counter()
            subprocess.run([sys.executable, LOAD_PY, args.data, "--url", url],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            load_s = time.perf_counter() - t
            t = time.perf_counter()
            post(base + "/api/v3/gnomon/snapshot")
            snapshot_s = time.perf_counter() - t
        out["load_s"] = round(load_s, 1)
        out["snapshot_s"] = round(snapshot_s, 2)
        size, files = parquet_bytes(data_dir)
        q, answer = timed_query(base)
        out["persisted"] = {"bytes": size, "files": files, "bytes_per_row": round(size / lines, 3),
                            "query_s": round(q, 3), "answer": answer}
        proc, t = restart(proc, args, data_dir, port, log)
        out["persisted"]["restart_to_first_answer_s"] = first_answer(base, proc, t)
        # The same query with the files read from the store (after a restart nothing is in
        # the Parquet cache), as the compacted files are read.
        out["persisted"]["query_after_restart_s"] = round(timed_query(base)[0], 3)
        # Compaction in a fresh process, as the background task would find old files: not
        # in the Parquet cache, read from the store.
        rss_before = reset_peak_rss(proc.pid)
        t = time.perf_counter()
        out["compaction"] = json.loads(post(base + "/api/v3/gnomon/compact"))
        out["compaction_s"] = round(time.perf_counter() - t, 2)
        if rss_before is not None:
            out["compaction_rss_before_mib"] = round(rss_before / 2**20)
            out["compaction_peak_rss_mib"] = round(peak_rss(proc.pid) / 2**20)
        # The merged-away files go on a later purge round (every second).
        expected = files - out["compaction"]["files_in"] + out["compaction"]["files_out"]
        end = time.time() + 30
        while parquet_bytes(data_dir)[1] > expected and time.time() < end:
            time.sleep(0.2)
        size, files = parquet_bytes(data_dir)
        q, answer = timed_query(base)
        out["compacted"] = {"bytes": size, "files": files, "bytes_per_row": round(size / lines, 3),
                            "query_s": round(q, 3), "answer": answer}
        proc, t = restart(proc, args, data_dir, port, log)
        out["compacted"]["restart_to_first_answer_s"] = first_answer(base, proc, t)
    finally:
        proc.terminate()
        proc.wait(60)
        if os.environ.get("KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            out["workdir"] = work
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
