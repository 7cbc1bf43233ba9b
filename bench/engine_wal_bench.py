#!/usr/bin/env python3
"""Processing-engine overhead on writes (issue 7): write throughput with a no-op WAL
trigger on every table (`all_tables`) versus none, side by side in one run.

Usage: engine_wal_bench.py GNOMON_BINARY LINE_PROTOCOL_FILE [--rounds N] [--load ARGS...]

For each variant and round it starts a fresh server (own data and plugin dir, random port),
creates the database (and, for the trigger variant, the trigger), then drives the file with
../shared/bench/load.py (override with LOAD_PY=...), and reads from /metrics how many plugin
calls ran and the server's CPU time (which, unlike throughput, a busy machine
barely moves). Variants alternate (none, trigger, none, trigger, ...) so drift of the machine
hits both alike. Prints lines/s per run and the ratio of the medians.
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

from benchlib import free_port, proc_cpu_s, wait_ready

NOOP_PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    pass
"""

DB = "bench"


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        return resp.status


def plugin_runs(base):
    with urllib.request.urlopen(f"{base}/metrics") as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('gnomon_plugin_runs_total{kind="wal"}'):
                return int(float(line.split()[-1]))
    return 0


def run_once(binary, lp_file, with_trigger, load_py, load_args):
    work = tempfile.mkdtemp(prefix="gnomon-engine-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    plugins = os.path.join(work, "plugins")
    os.makedirs(plugins)
    with open(os.path.join(plugins, "noop.py"), "w") as f:
        f.write(NOOP_PLUGIN)
    server = subprocess.Popen(
        [binary, "serve", "--http-bind", f"127.0.0.1:{port}", "--data-dir",
         os.path.join(work, "data"), "--plugin-dir", plugins, "--log-filter", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        post_json(f"{base}/api/v3/configure/database", {"db": DB})
        if with_trigger:
            post_json(f"{base}/api/v3/configure/processing_engine_trigger", {
                "db": DB, "plugin_filename": "noop.py", "trigger_name": "noop",
                "trigger_specification": "all_tables",
                "trigger_settings": {"run_async": False, "error_behavior": "log"},
                "disabled": False})
        out = os.path.join(work, "load.json")
        subprocess.run([sys.executable, load_py, lp_file, "--url",
                        f"{base}/api/v3/write_lp?db={DB}", "--json", out, *load_args],
                       check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            result = json.load(f)[0]
        time.sleep(1.0)  # let the last flushes reach the trigger
        return result, plugin_runs(base), proc_cpu_s(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("lp_file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load", nargs=argparse.REMAINDER, default=[],
                    help="extra arguments for load.py (e.g. --workers 4 --max-lines 2000000)")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    load_py = os.environ.get("LOAD_PY", os.path.join(here, "..", "..", "shared", "bench", "load.py"))
    rates = {False: [], True: []}
    cpus = {False: [], True: []}
    for round_no in range(args.rounds):
        for with_trigger in (False, True):
            result, runs, cpu = run_once(args.binary, args.lp_file, with_trigger, load_py,
                                         args.load)
            rate = result["lines_per_s"]
            rates[with_trigger].append(rate)
            cpus[with_trigger].append(cpu)
            label = "no-op all_tables trigger" if with_trigger else "no trigger"
            print(f"round {round_no + 1}: {label:26s} {rate:12,.0f} lines/s  "
                  f"p50 {result['lat_p50_ms']:.1f} ms  p99 {result['lat_p99_ms']:.1f} ms  "
                  f"server CPU {cpu:.2f} s  plugin calls {runs}",
                  flush=True)
    none, trig = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"median: none {none:,.0f} lines/s, trigger {trig:,.0f} lines/s, "
          f"trigger/none = {trig / none:.3f} ({(1 - trig / none) * 100:+.1f}% slower)")
    cnone, ctrig = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"median server CPU: none {cnone:.2f} s, trigger {ctrig:.2f} s, "
          f"trigger/none = {ctrig / cnone:.3f}")


if __name__ == "__main__":
    main()
