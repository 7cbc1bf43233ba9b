# Tests of runtime.py, run inside the embedded interpreter by `python::tests` (cargo test).
# Expected texts are the reference's examples (ENGINE.md §5-§7).

import copy
import json
import os
import tempfile
import time

import gnomon_plugin_runtime as rt


def expect_error(kind, text, fn):
    try:
        fn()
    except kind as e:
        assert str(e) == text, f"{kind.__name__}: {e!r} != {text!r}"
        return
    raise AssertionError(f"expected {kind.__name__}({text!r})")


# --- LineBuilder ------------------------------------------------------------------------------

line = (LineBuilder("metrics").tag("host", "server01").int64_field("cpu", 42)
        .uint64_field("memory_bytes", 8589934592).float64_field("load", 86.5)
        .string_field("status", "online").bool_field("healthy", True)
        .time_ns(1609459200000000000).build())
assert line == ('metrics,host=server01 cpu=42i,memory_bytes=8589934592u,load=86.5,'
                'status="online",healthy=t 1609459200000000000'), line

assert LineBuilder("m").tag("t", "app server 1").int64_field("f", 1).build() == \
    "m,t=app\\ server\\ 1 f=1i"
assert LineBuilder("m").tag("t", "web,app,db").int64_field("f", 1).build() == \
    "m,t=web\\,app\\,db f=1i"
assert LineBuilder("m").tag("t", "y=mx+b").int64_field("f", 1).build() == "m,t=y\\=mx+b f=1i"
assert LineBuilder("m").tag("t", "C:\\Program Files\\App").int64_field("f", 1).build() == \
    "m,t=C:\\\\Program\\ Files\\\\App f=1i"
assert LineBuilder("complex,measurement").int64_field("f", 1).build() == \
    "complex\\,measurement f=1i"
assert LineBuilder("m").float64_field("a", 2.0).float64_field("b", 3.14159).build() == \
    "m a=2.0,b=3.14159"
assert LineBuilder("m").string_field("s", 'say "hi" \\o/').build() == 'm s="say \\"hi\\" \\\\o/"'
# the same key twice overwrites, keeping the first position
assert LineBuilder("m").int64_field("a", 1).int64_field("b", 2).int64_field("a", 3).build() == \
    "m a=3i,b=2i"

expect_error(InvalidMeasurementError, "Measurement name cannot contain spaces",
             lambda: LineBuilder("bad name"))
expect_error(InvalidKeyError, "tag key cannot be empty", lambda: LineBuilder("m").tag("", "v"))
expect_error(InvalidKeyError, "field key 'a b' cannot contain spaces",
             lambda: LineBuilder("m").int64_field("a b", 1))
expect_error(InvalidKeyError, "tag key 'a,b' cannot contain commas",
             lambda: LineBuilder("m").tag("a,b", 1))
expect_error(InvalidKeyError, "field key 'a=b' cannot contain equals signs",
             lambda: LineBuilder("m").bool_field("a=b", True))
expect_error(ValueError, "uint64 field 'u' cannot be negative",
             lambda: LineBuilder("m").uint64_field("u", -1))
expect_error(InvalidLineError, "At least one field is required: m,t=v",
             lambda: LineBuilder("m").tag("t", "v").build())


# --- request plugin return values ---------------------------------------------------------------

assert rt._response("hi") == (200, [("Content-Type", "text/html")], b"hi")
assert rt._response({"status": "ok"}) == \
    (200, [("Content-Type", "application/json")], b'{"status": "ok"}')
assert rt._response(("made", 201)) == (201, [("Content-Type", "text/html")], b"made")
assert rt._response(([1], {"X-A": "b"})) == \
    (200, [("Content-Type", "application/json"), ("X-A", "b")], b"[1]")
assert rt._response((42, 404, {"X": "y"})) == \
    (404, [("Content-Type", "text/plain"), ("X", "y")], b"42")
assert rt._response(("x", 99999))[0] == 500
assert rt._response(iter(["a", b"b"])) == (200, [("Content-Type", "text/html")], b"ab")


class FlaskLike:
    status_code = 202
    headers = {"Content-Type": "text/csv"}

    def __flask_response__(self):
        return True

    def get_data(self):
        return b"a,b\n"


assert rt._response(FlaskLike()) == (202, [("Content-Type", "text/csv")], b"a,b\n")
try:
    rt._response(3.5)
    raise AssertionError("a float is not a response")
except ValueError:
    pass


# --- the cache ----------------------------------------------------------------------------------

private = rt.PluginCache("ns1")
other = rt.PluginCache("ns2")
private.put("k", {"v": 1})
assert private.get("k") == {"v": 1}
assert other.get("k") is None and other.get("k", "dflt") == "dflt"
other.put("g", 5, use_global=True)
assert private.get("g", use_global=True) == 5
private.put("short", 1, ttl=0.05)
assert private.get("short") == 1
time.sleep(0.1)
assert private.get("short") is None
assert private.delete("k") is True and private.delete("k") is False
try:
    private.put("x", 1, ttl=-1)
    raise AssertionError("negative ttl accepted")
except ValueError:
    pass
rt.drop_namespace("ns1")
private.put("k2", 1)
rt.drop_namespace("ns1")
assert private.get("k2") is None


# --- WAL table batches built on first use ---------------------------------------------------


class Source:
    calls = 0

    def rows(self):
        Source.calls += 1
        return [{"host": "a", "v": 1.0, "time": 5}]


batch = rt.TableBatch("cpu", Source())
assert Source.calls == 0
assert batch["table_name"] == "cpu" and Source.calls == 0
assert batch["rows"] == [{"host": "a", "v": 1.0, "time": 5}] and Source.calls == 1
assert batch["rows"] is batch["rows"] and Source.calls == 1
for read in (lambda b: json.loads(json.dumps(b)), dict, lambda b: {**b}, copy.deepcopy,
             lambda b: b.get("rows") and dict(b), lambda b: dict(b.items())):
    fresh = rt.TableBatch("cpu", Source())
    assert read(fresh) == {"table_name": "cpu", "rows": [{"host": "a", "v": 1.0, "time": 5}]}
assert "rows" in rt.TableBatch("cpu", Source())
assert len(rt.TableBatch("cpu", Source())) == 2
assert sorted(rt.TableBatch("cpu", Source())) == ["rows", "table_name"]


# --- loading plugins ----------------------------------------------------------------------------


class Host:
    def __init__(self):
        self.logs = []

    def log(self, level, text):
        self.logs.append((level, text))


with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "p.py")
    with open(path, "w") as f:
        f.write("def process_writes(influxdb3_local, table_batches, args=None):\n"
                "    influxdb3_local.info('n', len(table_batches), args)\n"
                "    influxdb3_local.write(LineBuilder('out').int64_field('n', 1))\n")
    host = Host()
    error, _, writes = rt.invoke_rows(path, host, "t", [("cpu", [{"a": 1}])], {"k": "v"})
    assert error is None, error
    assert host.logs == [("INFO", "n 1 {'k': 'v'}")], host.logs
    assert writes == [(None, "out n=1i")], writes

    # hot reload: a newer file is used at the next call
    with open(path, "w") as f:
        f.write("def process_writes(influxdb3_local, table_batches, args=None):\n"
                "    raise TypeError('changed')\n")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    error, _, _ = rt.invoke_rows(path, Host(), "t", [], None)
    assert error == "TypeError: changed", error

    with open(path, "w") as f:
        f.write("x = 1\n  y = 2\n")
    os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    error, _, _ = rt.invoke_rows(path, Host(), "t", [], None)
    assert error == "IndentationError: unexpected indent (<string>, line 2)", error

    with open(path, "w") as f:
        f.write("def something_else(): pass\n")
    os.utime(path, ns=(time.time_ns() + 3 * 10**9, time.time_ns() + 3 * 10**9))
    error, _, _ = rt.invoke_schedule(path, Host(), "t", 0, None)
    assert error == ("the process_scheduled_call function is not present in the plugin. Should "
                     "be defined as: process_scheduled_call(influxdb3_local, call_time, "
                     "args=None)"), error

    # a plugin calling sys.exit() is an error, not the end of the server
    with open(path, "w") as f:
        f.write("import sys\ndef process_request(a, b, c, d, e=None):\n    sys.exit(3)\n")
    os.utime(path, ns=(time.time_ns() + 4 * 10**9, time.time_ns() + 4 * 10**9))
    error, _, _ = rt.invoke_request(path, Host(), "t", {}, {}, b"", None)
    assert error == "SystemExit: 3", error

    # a multi-file plugin: a package whose modules import each other
    package = os.path.join(d, "multi")
    os.mkdir(package)
    with open(os.path.join(package, "helper.py"), "w") as f:
        f.write("def double(x):\n    return 2 * x\n")
    with open(os.path.join(package, "__init__.py"), "w") as f:
        f.write("from .helper import double\n"
                "def process_request(local, params, headers, body, args=None):\n"
                "    return {'doubled': double(int(params['x']))}\n")
    error, response, _ = rt.invoke_request(package, Host(), "t", {"x": "21"}, {}, b"", None)
    assert error is None, error
    assert response == (200, [("Content-Type", "application/json")], b'{"doubled": 42}')
    with open(os.path.join(package, "helper.py"), "w") as f:
        f.write("def double(x):\n    return 3 * x\n")
    later = time.time_ns() + 10**9
    os.utime(os.path.join(package, "helper.py"), ns=(later, later))
    error, response, _ = rt.invoke_request(package, Host(), "t", {"x": "1"}, {}, b"", None)
    assert response[2] == b'{"doubled": 3}', response
