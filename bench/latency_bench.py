#!/usr/bin/env python3
"""Write latency at a fixed offered rate (issue 2: p99 <= 15 ms at ~500k lines/s offered).

Usage: latency_bench.py FILE (--binary GNOMON | --url BASE | --sink)
                        [--rate 500000] [--batch 5000] [--connections 2] [--max-lines N]
                        [--warmup 4] [--workdir DIR] [--log-filter F] [--server-log FILE]
                        [--json OUT] [--extra ARG ...]

An open-loop, paced driver: batch i of FILE (cut into --batch lines, TSBS order) is
*scheduled* at t0 + i * batch / rate, whatever happened to earlier batches. --connections
threads each hold one keep-alive connection and take the next batch in order; a batch whose
connection is still busy with an earlier one is sent late, and its latency is measured from
the scheduled time, not from when it could be sent: queueing counts (no coordinated
omission, as wrk2 does it). `service` is the same measured from the actual send.

Every request (request line, headers, body) is built before the clock starts, and sent with
one `sendall` on a plain socket; responses are read with http.client. The driver shares the
cores with the server: its own CPU is reported, and `--sink` runs the same schedule against a
do-nothing HTTP server (the shared bench's sink.py) to show the driver's ceiling.

With --binary a fresh server is started in a temp dir under --workdir (random port, file
object store, `--extra` appended to its command line) and stopped at the end; its CPU time
during the run (/proc/PID/stat) and peak RSS (VmHWM) are reported. With --url only the
latencies (pass --pid to get CPU and RSS too). The first --warmup batches (the table's
creation) are sent on schedule but left out of the latency figures.

Prints one JSON object (also to --json). Standard library only.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import TICKS, free_port, proc_cpu_s, status_bytes, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
SINK_PY = os.environ.get("SINK_PY", os.path.join(HERE, "../../shared/bench/sink.py"))
DB = "bench"


def read_batches(path, batch_lines, max_lines=None):
    """The file's lines in batches of `batch_lines` (bytes, newline-terminated)."""
    batches, lines = [], []
    total = 0
    with open(path, "rb") as f:
        for line in f:
            if max_lines is not None and total >= max_lines:
                break
            lines.append(line)
            total += 1
            if len(lines) == batch_lines:
                batches.append(b"".join(lines))
                lines = []
    if lines:
        batches.append(b"".join(lines))
    return batches, total


def build_requests(batches, host, path):
    """Each batch as the exact bytes of one HTTP/1.1 POST (keep-alive)."""
    out = []
    for body in batches:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        out.append((head + body, body.count(b"\n")))
    return out


def total_cpu_s():
    """CPU seconds (user+system, all processes) since boot: the machine's busy time."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal
    busy = sum(int(parts[i]) for i in (0, 1, 2, 5, 6, 7))
    return busy / TICKS


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def run(requests, host, port, rate, connections, timeout=120.0):
    """Sends `requests` on schedule; returns per-batch (index, scheduled, sent, done, status)."""
    interval_per_line = 1.0 / rate
    schedule = []
    t = 0.0
    for _, lines in requests:
        schedule.append(t)
        t += lines * interval_per_line
    results = [None] * len(requests)
    next_index = [0]
    lock = threading.Lock()
    errors = []
    start_gate = threading.Barrier(connections + 1)
    t0_box = [0.0]

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start_gate.wait()
        t0 = t0_box[0]
        while True:
            with lock:
                i = next_index[0]
                if i >= len(requests):
                    break
                next_index[0] = i + 1
            scheduled = t0 + schedule[i]
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                conn.sock.sendall(requests[i][0])
                resp = http.client.HTTPResponse(conn.sock, method="POST")
                resp.begin()
                body = resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                    conn.connect()
            except (OSError, http.client.HTTPException) as e:
                status = 0
                body = repr(e).encode()
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.connect()
            done = time.perf_counter()
            if not 200 <= status < 300:
                with lock:
                    if len(errors) < 5:
                        errors.append(f"batch {i}: {status} {body[:300]!r}")
            results[i] = (scheduled - t0, sent - t0, done - t0, status)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for th in threads:
        th.start()
    # Everyone connected; the schedule starts a little ahead so the first sends are on time.
    t0_box[0] = time.perf_counter() + 0.05
    start_gate.wait()
    for th in threads:
        th.join()
    return results, errors


def summarize(results, requests, warmup):
    measured = [(r, requests[i][1]) for i, r in enumerate(results) if i >= warmup]
    ok = [(r, n) for r, n in measured if 200 <= r[3] < 300]
    lat = sorted((r[2] - r[0]) * 1000 for r, _ in ok)
    svc = sorted((r[2] - r[1]) * 1000 for r, _ in ok)
    late = sorted((r[1] - r[0]) * 1000 for r, _ in ok)
    first = min(r[0] for r, _ in measured) if measured else 0
    last = max(r[2] for r, _ in measured) if measured else 0
    lines = sum(n for _, n in ok)
    span = last - first

    def dist(vals):
        return {
            "p50": round(percentile(vals, 50), 2),
            "p90": round(percentile(vals, 90), 2),
            "p99": round(percentile(vals, 99), 2),
            "p999": round(percentile(vals, 99.9), 2),
            "max": round(vals[-1], 2),
        } if vals else None

    return {
        "batches": len(measured),
        "errors": len(measured) - len(ok),
        "lines": lines,
        "achieved_lines_per_s": round(lines / span) if span > 0 else None,
        "latency_ms": dist(lat),
        "service_ms": dist(svc),
        "send_delay_ms": dist(late),
        "over_15ms": sum(1 for v in lat if v > 15),
    }


def start_server(binary, data_dir, port, extra, log, log_filter):
    return subprocess.Popen(
        [binary, "serve", "--http-bind", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--log-filter", log_filter, *extra],
        stdout=log, stderr=subprocess.STDOUT)


def start_sink():
    port = free_port()
    proc = subprocess.Popen([sys.executable, SINK_PY, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time() + 10
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("sink not ready")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--binary", help="start this gnomon binary")
    target.add_argument("--url", help="base URL of a running server")
    target.add_argument("--sink", action="store_true", help="send to a do-nothing server")
    ap.add_argument("--pid", type=int, help="with --url: server process for CPU and RSS")
    ap.add_argument("--rate", type=float, default=500_000, help="offered lines per second")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--max-lines", type=int)
    ap.add_argument("--warmup", type=int, default=4, help="first batches left out of figures")
    ap.add_argument("--workdir", default="/tmp/latbench")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="more `gnomon serve` arguments (last on the command line)")
    ap.add_argument("--json")
    ap.add_argument("--log-filter", default="warn", help="the server's --log-filter")
    ap.add_argument("--server-log", help="keep the server's log here (default: dropped)")
    args = ap.parse_args()

    batches, total = read_batches(args.file, args.batch, args.max_lines)
    proc = sink = data_dir = None
    pid = args.pid
    if args.binary:
        os.makedirs(args.workdir, exist_ok=True)
        data_dir = tempfile.mkdtemp(dir=args.workdir)
        port = free_port()
        log = open(args.server_log or os.path.join(data_dir, "server.log"), "wb")
        proc = start_server(args.binary, os.path.join(data_dir, "data"), port, args.extra, log,
                            args.log_filter)
        base = f"http://127.0.0.1:{port}"
        pid = proc.pid
    elif args.sink:
        sink, port = start_sink()
        base = f"http://127.0.0.1:{port}"
        pid = sink.pid
    else:
        base = args.url.rstrip("/")
    u = urllib.parse.urlsplit(base)
    host, port = u.hostname, u.port or 80
    path = f"/api/v3/write_lp?db={DB}&precision=nanosecond"
    requests = build_requests(batches, f"{host}:{port}", path)
    del batches
    try:
        if not args.sink:
            wait_ready(base, proc)
        load_before = os.getloadavg()
        cpu0 = proc_cpu_s(pid) if pid else None
        all0 = total_cpu_s()
        drv0 = os.times()
        wall0 = time.perf_counter()
        results, errors = run(requests, host, port, args.rate, args.connections)
        wall = time.perf_counter() - wall0
        drv1 = os.times()
        all1 = total_cpu_s()
        cpu1 = proc_cpu_s(pid) if pid else None
        out = {
            "target": "sink" if args.sink else ("binary" if args.binary else base),
            "offered_lines_per_s": args.rate,
            "batch": args.batch,
            "connections": args.connections,
            "lines_in_file": total,
            **summarize(results, requests, args.warmup),
            "wall_s": round(wall, 2),
            "server_cpu_s": round(cpu1 - cpu0, 2) if pid else None,
            "server_cpu_s_per_mline": (round((cpu1 - cpu0) / (total / 1e6), 3)
                                       if pid and total else None),
            "server_peak_rss_mib": round(status_bytes(pid, "VmHWM") / 2**20) if pid else None,
            "driver_cpu_s": round((drv1.user - drv0.user) + (drv1.system - drv0.system), 2),
            "machine_busy_cores": round((all1 - all0) / wall, 2),
            "loadavg_before": load_before[0],
            "first_errors": errors,
        }
    finally:
        for p in (proc, sink):
            if p is not None:
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
