# The Python half of Gnomon's processing engine: loaded once into the embedded interpreter as
# the module `gnomon_plugin_runtime`. It holds what is easier to get exactly right in Python
# than through the C API: `LineBuilder` (its number formatting is Python's `str()`), the
# `influxdb3_local` object, the plugin cache, plugin loading with hot reload, and the mapping of
# a request plugin's return value to an HTTP response (ENGINE.md §5-§7).
#
# The Rust side passes in a `host` object per invocation with three methods:
#   host.log(level, text), host.query(sql, args, database) -> list[dict],
#   host.write_sync(database_or_None, lines, no_sync)
# and gets back plain tuples. Nothing here talks to the network or the database directly.

import builtins
import importlib
import json
import os
import sys
import time
from datetime import datetime


# --------------------------------------------------------------------------------------------
# LineBuilder (ENGINE.md §7)
# --------------------------------------------------------------------------------------------

class InvalidMeasurementError(ValueError):
    pass


class InvalidKeyError(ValueError):
    pass


class InvalidLineError(ValueError):
    pass


class QueryError(Exception):
    pass


def _validate_key(kind, key):
    if not key:
        raise InvalidKeyError(f"{kind} key cannot be empty")
    if " " in key:
        raise InvalidKeyError(f"{kind} key '{key}' cannot contain spaces")
    if "," in key:
        raise InvalidKeyError(f"{kind} key '{key}' cannot contain commas")
    if "=" in key:
        raise InvalidKeyError(f"{kind} key '{key}' cannot contain equals signs")


def _escape_measurement(name):
    return name.replace(",", "\\,").replace(" ", "\\ ")


def _escape_key_or_tag(text):
    return (text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
            .replace(" ", "\\ "))


def _format_float(value):
    value = float(value)
    if value.is_integer():
        return f"{int(value)}.0"
    return str(value)


class LineBuilder:
    def __init__(self, measurement):
        if " " in measurement:
            raise InvalidMeasurementError("Measurement name cannot contain spaces")
        self.measurement = measurement
        self.tags = {}
        self.fields = {}
        self._timestamp_ns = None

    def tag(self, key, value):
        _validate_key("tag", key)
        self.tags[key] = str(value)
        return self

    def int64_field(self, key, value):
        _validate_key("field", key)
        self.fields[key] = f"{int(value)}i"
        return self

    def uint64_field(self, key, value):
        _validate_key("field", key)
        if value < 0:
            raise ValueError(f"uint64 field '{key}' cannot be negative")
        self.fields[key] = f"{int(value)}u"
        return self

    def float64_field(self, key, value):
        _validate_key("field", key)
        self.fields[key] = _format_float(value)
        return self

    def string_field(self, key, value):
        _validate_key("field", key)
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        self.fields[key] = f'"{escaped}"'
        return self

    def bool_field(self, key, value):
        _validate_key("field", key)
        self.fields[key] = "t" if value else "f"
        return self

    def time_ns(self, timestamp_ns):
        self._timestamp_ns = int(timestamp_ns)
        return self

    def build(self):
        line = _escape_measurement(self.measurement)
        for key, value in self.tags.items():
            line += f",{_escape_key_or_tag(key)}={_escape_key_or_tag(value)}"
        if not self.fields:
            raise InvalidLineError(f"At least one field is required: {line}")
        line += " " + ",".join(f"{_escape_key_or_tag(k)}={v}" for k, v in self.fields.items())
        if self._timestamp_ns is not None:
            line += f" {self._timestamp_ns}"
        return line


# Plugins use these without importing anything (ENGINE.md §2).
for _name, _value in (("LineBuilder", LineBuilder),
                      ("InvalidMeasurementError", InvalidMeasurementError),
                      ("InvalidKeyError", InvalidKeyError),
                      ("InvalidLineError", InvalidLineError),
                      ("QueryError", QueryError)):
    setattr(builtins, _name, _value)


# --------------------------------------------------------------------------------------------
# The in-memory cache (ENGINE.md §6.4)
# --------------------------------------------------------------------------------------------

_namespaces = {}  # namespace key -> {key: (value, expires_at or None)}
_GLOBAL = "\0global"


def drop_namespace(key):
    _namespaces.pop(key, None)


class PluginCache:
    def __init__(self, namespace):
        self._namespace = namespace

    def _store(self, use_global):
        return _namespaces.setdefault(_GLOBAL if use_global else self._namespace, {})

    def put(self, key, value, ttl=None, use_global=None):
        expires = None
        if ttl is not None:
            try:
                ttl = float(ttl)
            except (TypeError, ValueError):
                raise ValueError(f"invalid ttl: {ttl!r}") from None
            if ttl < 0 or ttl != ttl:
                raise ValueError(f"ttl must be a non-negative number of seconds, got {ttl}")
            expires = time.monotonic() + ttl
        self._store(use_global)[key] = (value, expires)

    def get(self, key, default=None, use_global=None):
        store = self._store(use_global)
        entry = store.get(key)
        if entry is None:
            return default
        value, expires = entry
        if expires is not None and time.monotonic() >= expires:
            del store[key]
            return default
        return value

    def delete(self, key, use_global=None):
        store = self._store(use_global)
        entry = store.pop(key, None)
        if entry is None:
            return False
        expires = entry[1]
        return expires is None or time.monotonic() < expires


# --------------------------------------------------------------------------------------------
# influxdb3_local (ENGINE.md §6)
# --------------------------------------------------------------------------------------------

def _build(line_builder):
    line = line_builder.build()
    if not isinstance(line, str):
        raise TypeError(f"build() must return a str of line protocol, not {type(line).__name__}")
    return line


class InfluxDB3Local:
    def __init__(self, host, cache):
        self._host = host
        self.cache = cache
        # (database or None for the trigger's own, line), in call order
        self._writes = []

    def _log(self, level, args):
        self._host.log(level, " ".join(str(a) for a in args))

    def info(self, *args):
        self._log("INFO", args)

    def warn(self, *args):
        self._log("WARN", args)

    def error(self, *args):
        self._log("ERROR", args)

    def write(self, line_builder):
        self._writes.append((None, _build(line_builder)))

    def write_to_db(self, db_name, line_builder):
        self._writes.append((str(db_name), _build(line_builder)))

    def write_sync(self, line_builder, no_sync):
        self._host.write_sync(None, _build(line_builder), bool(no_sync))

    def write_sync_to_db(self, db_name, line_builder, no_sync):
        self._host.write_sync(str(db_name), _build(line_builder), bool(no_sync))

    def query(self, query, args=None, database=None):
        if args is not None:
            args = {str(k): str(v) for k, v in dict(args).items()}
        try:
            return self._host.query(str(query), args, database)
        except RuntimeError as e:
            raise QueryError(str(e)) from None


# --------------------------------------------------------------------------------------------
# WAL rows, materialized only when a plugin looks at them
# --------------------------------------------------------------------------------------------

class TableBatch(dict):
    """`{"table_name": ..., "rows": [...]}` whose rows are built on first use.

    Building a dict per row costs about a microsecond; a plugin that only counts tables or
    filters by name should not pay it for every row of every flush. Every way of reading the
    dict goes through an override that builds the rows first, so plugins see a plain dict."""

    __slots__ = ("_source",)

    def __init__(self, table_name, source):
        dict.__init__(self, table_name=table_name)
        self._source = source

    def _fill(self):
        source = self._source
        if source is not None:
            self._source = None
            dict.__setitem__(self, "rows", source.rows())

    def __missing__(self, key):
        if key == "rows" and self._source is not None:
            self._fill()
            return dict.__getitem__(self, "rows")
        raise KeyError(key)


def _filling(name):
    method = getattr(dict, name)

    def wrapper(self, *args, **kwargs):
        self._fill()
        return method(self, *args, **kwargs)

    wrapper.__name__ = name
    return wrapper


for _name in ("get", "__contains__", "keys", "items", "values", "__iter__", "__len__",
              "__repr__", "__eq__", "__ne__", "copy", "pop", "popitem", "setdefault",
              "__reduce_ex__", "__or__", "__ror__"):
    setattr(TableBatch, _name, _filling(_name))


# --------------------------------------------------------------------------------------------
# Loading plugins (ENGINE.md §2), with hot reload
# --------------------------------------------------------------------------------------------

_code_cache = {}      # file path -> (mtime_ns, code object)
_package_cache = {}   # package dir -> newest mtime_ns seen at import


class _MissingEntry(Exception):
    pass


_ENTRY_SIGNATURES = {
    "process_writes": "process_writes(influxdb3_local, table_batches, args=None)",
    "process_scheduled_call": "process_scheduled_call(influxdb3_local, call_time, args=None)",
    "process_request": "process_request(influxdb3_local, query_parameters, request_headers, "
                       "request_body, args=None) -> Tuple[str, Optional[Dict[str, str]]]",
}


def _newest_py_mtime(directory):
    newest = 0
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
    return newest


def _load_file(path, entry):
    mtime = os.stat(path).st_mtime_ns
    cached = _code_cache.get(path)
    if cached is None or cached[0] != mtime:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        cached = (mtime, compile(source, "<string>", "exec"))
        _code_cache[path] = cached
    namespace = {"__name__": "__plugin__", "__builtins__": builtins, "__file__": path}
    exec(cached[1], namespace)
    return namespace.get(entry)


def _load_package(directory, entry):
    directory = directory.rstrip("/")
    parent, name = os.path.split(directory)
    newest = _newest_py_mtime(directory)
    if _package_cache.get(directory) != newest:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
        importlib.invalidate_caches()
        _package_cache[directory] = newest
    if parent not in sys.path:
        sys.path.insert(0, parent)
    module = importlib.import_module(name)
    return getattr(module, entry, None)


def _entry_function(path, entry):
    if os.path.isdir(path):
        function = _load_package(path, entry)
    else:
        function = _load_file(path, entry)
    if not callable(function):
        raise _MissingEntry(f"the {entry} function is not present in the plugin. "
                            f"Should be defined as: {_ENTRY_SIGNATURES[entry]}")
    return function


def _describe(error):
    if isinstance(error, _MissingEntry):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _invoke(path, entry, host, namespace, make_args):
    """Runs one plugin call. Returns (error text or None, return value, buffered writes)."""
    local = InfluxDB3Local(host, PluginCache(namespace))
    try:
        function = _entry_function(path, entry)
        result = function(local, *make_args())
        return (None, result, local._writes)
    except BaseException as e:  # a plugin's SystemExit or KeyboardInterrupt must not escape
        return (_describe(e), None, local._writes)


def invoke_writes(path, host, namespace, table_batches, args):
    """table_batches: list of (table_name, row source)."""
    def make_args():
        return ([TableBatch(name, source) for name, source in table_batches], args)
    return _invoke(path, "process_writes", host, namespace, make_args)


def invoke_rows(path, host, namespace, table_batches, args):
    """As invoke_writes, with rows already built (plugin tests)."""
    def make_args():
        return ([{"table_name": name, "rows": rows} for name, rows in table_batches], args)
    return _invoke(path, "process_writes", host, namespace, make_args)


def invoke_schedule(path, host, namespace, call_time_secs, args):
    def make_args():
        return (datetime.fromtimestamp(call_time_secs), args)
    return _invoke(path, "process_scheduled_call", host, namespace, make_args)


def invoke_request(path, host, namespace, query_parameters, headers, body, args):
    """Returns (error, (status, [(header, value)], body bytes) or None, writes)."""
    def make_args():
        return (query_parameters, headers, body, args)
    error, result, writes = _invoke(path, "process_request", host, namespace, make_args)
    if error is not None:
        return (error, None, writes)
    try:
        return (None, _response(result), writes)
    except BaseException as e:
        return (_describe(e), None, writes)


# --------------------------------------------------------------------------------------------
# Request plugin return values → HTTP (ENGINE.md §5.3)
# --------------------------------------------------------------------------------------------

def _body(value):
    if isinstance(value, str):
        return "text/html", value.encode("utf-8")
    if isinstance(value, (dict, list)):
        return "application/json", json.dumps(value).encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return "text/plain", bytes(value)
    return "text/plain", str(value).encode("utf-8")


def _status(value):
    status = int(value)
    return status if 100 <= status <= 999 else 500


def _response(value):
    if hasattr(value, "__flask_response__") and callable(value.__flask_response__) \
            and value.__flask_response__():
        headers = [(str(k), str(v)) for k, v in dict(value.headers).items()]
        return (_status(value.status_code), headers, bytes(value.get_data()))
    if isinstance(value, tuple):
        if not value or len(value) > 3:
            raise ValueError(f"a request plugin may return a tuple of 1 to 3 items, "
                             f"got {len(value)}")
        status, extra = 200, {}
        for item in value[1:]:
            if isinstance(item, bool):
                raise ValueError(f"invalid item in response tuple: {item!r}")
            if isinstance(item, int):
                status = item
            elif isinstance(item, dict):
                extra = item
            else:
                raise ValueError(f"invalid item in response tuple: {item!r}")
        content_type, body = _body(value[0])
        headers = [("Content-Type", content_type)]
        headers += [(str(k), str(v)) for k, v in extra.items()]
        return (_status(status), headers, body)
    if isinstance(value, (str, dict, list)):
        content_type, body = _body(value)
        return (200, [("Content-Type", content_type)], body)
    try:
        items = iter(value)
    except TypeError:
        raise ValueError(f"unsupported return value of process_request: "
                         f"{type(value).__name__}") from None
    chunks = []
    for item in items:
        chunks.append(item if isinstance(item, (bytes, bytearray)) else str(item).encode())
    return (200, [("Content-Type", "text/html")], b"".join(chunks))


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------

def activate_venv(venv):
    """Makes the packages of `venv` importable (like `source venv/bin/activate`)."""
    import site
    os.environ["VIRTUAL_ENV"] = venv
    lib = os.path.join(venv, "lib")
    if os.path.isdir(lib):
        for entry in sorted(os.listdir(lib)):
            site_packages = os.path.join(lib, entry, "site-packages")
            if entry.startswith("python") and os.path.isdir(site_packages):
                site.addsitedir(site_packages)
    importlib.invalidate_caches()


def add_plugin_dir(path):
    """Single-file plugins may import helper modules kept beside them."""
    if path not in sys.path:
        sys.path.insert(0, path)


def base_interpreter():
    """The python executable matching this embedded interpreter (to create venvs with)."""
    major, minor = sys.version_info[:2]
    for candidate in (f"python{major}.{minor}", f"python{major}"):
        path = os.path.join(sys.base_prefix, "bin", candidate)
        if os.access(path, os.X_OK):
            return path
    return None


if not getattr(sys, "argv", None):
    sys.argv = ["gnomon"]
