"""Helpers the benchmark scripts share: ports, HTTP, readiness, /proc figures, and streaming
TSBS data from `../shared/bench/gen.py` without a file. Standard library only."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_PY = os.environ.get("GEN_PY", os.path.join(HERE, "../../shared/bench/gen.py"))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body=b"", timeout=3600, content_type="application/json"):
    """POSTs `body`; returns the answer's bytes (raises on a non-2xx status)."""
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_ready(base, proc=None, deadline=120):
    """Waits for `base`/health to answer; exits if `proc` dies or time runs out."""
    end = time.time() + deadline
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(base + "/health", timeout=1).read()
            return
        except Exception:
            time.sleep(0.02)
    sys.exit("server not ready")


def proc_cpu_s(pid):
    """User + system CPU seconds of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        # Field 2 (comm) may hold spaces: split after its closing parenthesis.
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICKS


def status_bytes(pid, key):
    """A `/proc/PID/status` size field (`VmRSS`, `VmHWM`, ...) in bytes; 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def stream_tsbs(write_url, hosts, hours, after_hour=None, batch_lines=5000):
    """Pipes gen.py's cpu-only output (from 2016-01-01) to `write_url` in `batch_lines`-line
    requests, 4 in flight, calling `after_hour(hour)` once each hour of data is acknowledged
    (so neither the text nor a server's buffer of a whole day has to fit anywhere). Returns
    the seconds spent writing, the hooks not counted."""
    gen = subprocess.Popen([sys.executable, GEN_PY, "--hosts", str(hosts), "--duration",
                            f"{hours}h", "-o", "-"], stdout=subprocess.PIPE, bufsize=1 << 20)
    per_hour = hosts * 360

    def send(lines):
        return post(write_url, b"".join(lines), content_type="text/plain")

    writing = 0.0
    with ThreadPoolExecutor(4) as pool:
        for hour in range(hours):
            t = time.perf_counter()
            pending, batch = [], []
            for _ in range(per_hour):
                batch.append(gen.stdout.readline())
                if len(batch) == batch_lines:
                    pending.append(pool.submit(send, batch))
                    batch = []
                if len(pending) > 8:
                    pending.pop(0).result()
            if batch:
                pending.append(pool.submit(send, batch))
            for p in pending:
                p.result()
            writing += time.perf_counter() - t
            if after_hour:
                after_hour(hour)
    gen.wait()
    return writing
