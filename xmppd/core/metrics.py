"""The server's metrics: what ``xmppctl status`` shows and ``http_openmetrics`` serves.

Three sorts of numbers, each as cheap as it can be where it is taken:

* **counters on the routing path** are plain integer fields of one
  :class:`StanzaCounts` object per kind of stream (``c2s``, ``component``,
  ``s2sin``, ``s2sout``: Prosody's session types). A stream keeps a reference to
  its object and adds one to a field per stanza: no lock, no label lookup;
* **gauges** (connections, sessions, s2s links, process memory and CPU) are not
  kept up to date at all: they are read from the live objects when someone asks
  (Prosody's ``statistics_interval = "manual"``);
* **storage latency**: a :class:`Histogram` per store kind and operation, fed by
  the timed storage wrapper (``xmppd/storage/timed.py``) the server puts around
  its backend.

:meth:`Metrics.collect` turns all of it into :class:`MetricFamily` objects: the
core's own, then whatever protocols and modules add as ``metrics`` items (a
function returning families; s2s adds its links that way, MUC its rooms).
:func:`render` writes families as OpenMetrics 1.0 text. Names are Prosody's
where Prosody (or its ``mod_measure_*`` modules) exports the same quantity, so a
Prosody admin's dashboards keep working; ``process_*`` are the Prometheus
client's; the rest is ``xmppd_*`` (``docs/modules/http_openmetrics.md``).

Nothing here does network I/O; :func:`process_families` reads ``/proc/self``.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import re
import resource
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.metrics")

STANZA_KINDS = ("message", "presence", "iq")
SESSION_TYPES = ("c2s", "component", "s2sin", "s2sout")
# every listener kind, so a dashboard sees 0 rather than nothing
CONNECTION_KINDS = ("c2s", "c2s_direct_tls", "websocket", "bosh", "component", "s2s_in", "s2s_out")
# seconds: a SQLite read is well under a millisecond, a commit a few, a stuck disk more
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.5, 1.0, 5.0)
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TYPES = ("counter", "gauge", "histogram")

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class StanzaCounts:
    """Stanzas in and out of one kind of stream, by kind. The routing path adds
    to these fields directly (``counts.message_in += 1``)."""
    __slots__ = ("message_in", "presence_in", "iq_in", "message_out", "presence_out", "iq_out")

    def __init__(self) -> None:
        self.message_in = self.presence_in = self.iq_in = 0
        self.message_out = self.presence_out = self.iq_out = 0


class Histogram:
    """Observations in fixed buckets (upper bounds, inclusive), their count and sum."""
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float] = STORAGE_BUCKETS):
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)   # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)``, ending with ``(inf, count)``."""
        out, n = [], 0
        for bound, c in zip(self.bounds + (math.inf,), self.counts):
            n += c
            out.append((bound, n))
        return out


class MetricFamily:
    """One metric (a name, a type, help, a unit) and its samples, one per label set.

    ``name`` is the family's: a counter's samples are written ``<name>_total``, a
    histogram's ``<name>_bucket``/``_count``/``_sum``. With a ``unit``, the name
    ends with it (OpenMetrics: ``xmppd_storage_operation_duration_seconds``)."""
    __slots__ = ("name", "type", "help", "unit", "samples")

    def __init__(self, name: str, type: str, help: str, unit: str = ""):
        if not _NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid metric name {name!r}")
        if type not in TYPES:
            raise ValueError(f"metric {name}: unknown type {type!r} (one of {', '.join(TYPES)})")
        if type == "counter" and name.endswith("_total"):
            raise ValueError(f"counter {name}: name it without _total (its samples get it)")
        if unit and not name.endswith("_" + unit):
            raise ValueError(f"metric {name}: a name with unit {unit!r} ends with _{unit}")
        self.name = name
        self.type = type
        self.help = help
        self.unit = unit
        self.samples: list[tuple[str, dict[str, str], float]] = []   # (suffix, labels, value)

    def add(self, value: float, **labels: Any) -> "MetricFamily":
        """A counter's or a gauge's value for these labels."""
        if self.type == "histogram":
            raise TypeError(f"{self.name} is a histogram: use add_histogram")
        self.samples.append(("_total" if self.type == "counter" else "",
                             _labels(self.name, labels), value))
        return self

    def add_histogram(self, hist: Histogram, **labels: Any) -> "MetricFamily":
        if self.type != "histogram":
            raise TypeError(f"{self.name} is a {self.type}")
        base = _labels(self.name, labels)
        for bound, n in hist.cumulative():
            self.samples.append(("_bucket", {**base, "le": _number(bound)}, n))
        self.samples.append(("_count", base, hist.count))
        self.samples.append(("_sum", base, hist.sum))
        return self

    def to_json(self) -> dict:
        """For the control socket (``xmppctl status --json``)."""
        return {"name": self.name, "type": self.type, "help": self.help, "unit": self.unit,
                "samples": [{"name": self.name + suffix, "labels": labels, "value": value}
                            for suffix, labels, value in self.samples]}


def _labels(name: str, labels: dict) -> dict[str, str]:
    for k in labels:
        if not _LABEL.match(k) or k.startswith("__") or k == "le":
            raise ValueError(f"metric {name}: invalid label name {k!r}")
    return {k: str(v) for k, v in labels.items()}


# -- the OpenMetrics text format ---------------------------------------------------------

def _number(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families: Iterable[MetricFamily]) -> str:
    """OpenMetrics 1.0 text: per family ``# TYPE``, ``# UNIT`` (when it has one),
    ``# HELP``, its samples; then ``# EOF``."""
    out: list[str] = []
    add = out.append
    for f in families:
        add(f"# TYPE {f.name} {f.type}\n")
        if f.unit:
            add(f"# UNIT {f.name} {f.unit}\n")
        if f.help:
            add(f"# HELP {f.name} {_escape(f.help)}\n")
        for suffix, labels, value in f.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                add(f"{f.name}{suffix}{{{inner}}} {_number(value)}\n")
            else:
                add(f"{f.name}{suffix} {_number(value)}\n")
    add("# EOF\n")
    return "".join(out)


def merge(families: Iterable[MetricFamily]) -> list[MetricFamily]:
    """Families of the same name (several hosts' MUC rooms) become one, in the order
    their names first came; one whose type differs from the first is dropped."""
    by_name: dict[str, MetricFamily] = {}
    for f in families:
        first = by_name.get(f.name)
        if first is None:
            merged = MetricFamily(f.name, f.type, f.help, f.unit)
            merged.samples.extend(f.samples)
            by_name[f.name] = merged
        elif first.type != f.type:
            log.warning("metric %s is both a %s and a %s; the %s is left out", f.name,
                        first.type, f.type, f.type)
        else:
            first.samples.extend(f.samples)
    return list(by_name.values())


# -- the process ---------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_families(start_time: float) -> list[MetricFamily]:
    """The Prometheus client's ``process_*`` metrics (Prosody's ``mod_measure_process``
    has the same names): CPU, memory, file descriptors, start time."""
    t = os.times()
    out = [MetricFamily("process_cpu_seconds", "counter", "Total user and system CPU time "
                        "spent in seconds.", "seconds").add(round(t.user + t.system, 3))]
    rss = vsz = None
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
        vsz, rss = int(fields[0]) * _PAGE, int(fields[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        # no /proc: the peak is what getrusage knows (kilobytes on Linux)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.append(MetricFamily("process_resident_memory_bytes", "gauge",
                            "Resident memory size in bytes.", "bytes").add(rss))
    if vsz is not None:
        out.append(MetricFamily("process_virtual_memory_bytes", "gauge",
                                "Virtual memory size in bytes.", "bytes").add(vsz))
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    if fds is not None:
        out.append(MetricFamily("process_open_fds", "gauge",
                                "Number of open file descriptors.").add(fds))
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out.append(MetricFamily("process_max_fds", "gauge",
                                "Maximum number of open file descriptors.").add(soft))
    out.append(MetricFamily("process_start_time_seconds", "gauge", "Start time of the process "
                            "since unix epoch in seconds.", "seconds").add(round(start_time, 3)))
    return out


# -- the server's registry -------------------------------------------------------------------

class Metrics:
    """The metrics of one server (``server.metrics``)."""

    def __init__(self, server: "Server"):
        self.server = server
        self.stanzas: dict[str, StanzaCounts] = {t: StanzaCounts() for t in SESSION_TYPES}
        self.storage: dict[tuple[str, str], Histogram] = {}

    def stanza_counts(self, session_type: str) -> StanzaCounts:
        """The counters a stream of this type adds to (a new type gets its own)."""
        counts = self.stanzas.get(session_type)
        if counts is None:
            counts = self.stanzas[session_type] = StanzaCounts()
        return counts

    def storage_histogram(self, store_type: str, operation: str) -> Histogram:
        """Where the timed storage records one kind of operation."""
        key = (store_type, operation)
        hist = self.storage.get(key)
        if hist is None:
            hist = self.storage[key] = Histogram()
        return hist

    # -- reading -------------------------------------------------------------------------
    def exposition(self) -> str:
        """Every metric, now, as OpenMetrics text (served as :data:`CONTENT_TYPE`)."""
        return render(self.collect())

    def collect(self) -> list[MetricFamily]:
        """Every metric, read now: the core's, then the ``metrics`` items' (server-wide
        and each host's, each function once)."""
        server = self.server
        families = [MetricFamily("xmppd_info", "gauge", "xmppd's version").add(
            1, version=server.version)]
        families.extend(process_families(server.started_at))
        families.extend(self._connections())
        families.extend(self._stanzas())
        families.append(self._storage())
        seen: set[int] = set()
        sources = [server.items("metrics")]
        sources += [h.items("metrics") for h in server.hosts.values()]
        for items in sources:
            for func in items:
                if id(func) in seen:
                    continue
                seen.add(id(func))
                try:
                    families.extend(func() or ())
                except Exception:
                    log.exception("metrics from %r failed", func)
        return merge(families)

    def _connections(self) -> list[MetricFamily]:
        server = self.server
        by_kind = dict.fromkeys(CONNECTION_KINDS, 0)
        # Prosody's mod_c2s gauge: client connections over TCP and WebSocket
        c2s: dict[tuple[str, str], list[int]] = {}
        for sess in server.c2s_sessions:
            kind = connection_kind(sess)
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if kind in ("component", "bosh"):
                continue
            host = sess.host.name if sess.host is not None else ""
            t = "c2s" if sess.authenticated else "c2s_unauthed"
            fam = c2s.setdefault((host, t), [0, 0])
            fam[1 if ":" in (sess.address or "") else 0] += 1
        conns = MetricFamily("xmppd_connections", "gauge",
                             "Open connections by listener kind (a BOSH session counts as one)")
        for kind, n in by_kind.items():
            if kind in ("s2s_in", "s2s_out"):
                continue    # the s2s protocol adds them (its metrics item)
            conns.add(n, listener=kind)
        prosody = MetricFamily("prosody_mod_c2s__connections", "gauge",
                               "Established c2s connections")
        for (host, t), (v4, v6) in sorted(c2s.items()):
            prosody.add(v4, host=host, type=t, ip_family="ipv4")
            prosody.add(v6, host=host, type=t, ip_family="ipv6")
        sessions = MetricFamily("xmppd_sessions", "gauge",
                                "Bound client resources per VirtualHost (stream management's "
                                "hibernating ones included)")
        for host in server.hosts.values():
            if host.is_virtualhost:
                sessions.add(sum(len(r) for r in host.sessions.values()), host=host.name)
        return [conns, prosody, sessions]

    def _stanzas(self) -> list[MetricFamily]:
        # Prosody's mod_measure_stanza_counts names and labels
        received = MetricFamily("prosody_mod_measure_stanza_counts__received", "counter",
                                "Stanzas received by xmppd")
        sent = MetricFamily("prosody_mod_measure_stanza_counts__sent", "counter",
                            "Stanzas sent by xmppd")
        for session_type, c in self.stanzas.items():
            for kind in STANZA_KINDS:
                received.add(getattr(c, kind + "_in"), session_type=session_type, stanza_kind=kind)
                sent.add(getattr(c, kind + "_out"), session_type=session_type, stanza_kind=kind)
        return [received, sent]

    def _storage(self) -> MetricFamily:
        fam = MetricFamily("xmppd_storage_operation_duration_seconds", "histogram",
                           "How long storage operations took, as their caller waited for "
                           "them", "seconds")
        for (store_type, op), hist in sorted(self.storage.items()):
            if hist.count:    # an operation nothing has done yet is left out
                fam.add_histogram(hist, store_type=store_type, operation=op)
        return fam


def connection_kind(sess) -> str:
    """Which listener kind a client-side session (``server.c2s_sessions``) is."""
    if sess.kind == "component":
        return "component"
    framing = sess.framing
    if framing is not None:
        return framing            # "websocket", "bosh"
    return "c2s_direct_tls" if sess.direct_tls else "c2s"

