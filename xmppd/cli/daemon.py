"""``xmppd``: run the server in the foreground (systemd or ``make run`` supervise it)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import signal
import sys

from .. import __version__

log = logging.getLogger("xmppd")

DEFAULT_CONFIGS = ("/etc/xmppd/xmppd.cfg.lua", "xmppd.cfg.lua")


def find_config(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("XMPPD_CONFIG")
    if env:
        return env
    for p in DEFAULT_CONFIGS:
        if os.path.exists(p):
            return p
    return DEFAULT_CONFIGS[0]


def diagnose(cfg) -> tuple[list, list[str]]:
    """``(warnings, errors)`` about a loaded configuration: the loader's warnings,
    unknown or misplaced options, modules xmppd lacks (what ``xmppctl check config``
    prints and the daemon logs at start). An option of the wrong type raises
    :class:`~xmppd.config.ConfigError` (file:line:col)."""
    from ..app import FINDER
    from ..config import ConfigWarning
    from ..config.options import CORE_OPTIONS, OptionRegistry, check
    reg = OptionRegistry()
    for opt in FINDER.declared_options(CORE_OPTIONS):
        try:
            reg.declare(opt)
        except ValueError:  # declared twice, differently: the first one wins
            pass
    warnings = list(cfg.warnings) + list(check(cfg, reg, FINDER.known()))
    errors: list[str] = []
    if not cfg.virtual_hosts():
        warnings.append(ConfigWarning(cfg.path, 0, 0, "no enabled VirtualHost (write "
                                      "conf.avail/DOMAIN.cfg.lua and run `xmppctl enable DOMAIN`)"))
    # Prosody always stores messages for offline users; xmppd only with "offline"
    # listed, so a migrated Prosody configuration would silently lose them
    where = cfg.where("modules_enabled")
    disabled = cfg.get("modules_disabled") or ()
    if where is not None and "offline" not in (where.value or ()) and "offline" not in disabled:
        warnings.append(ConfigWarning(where.file, where.line, where.col,
                                      "modules_enabled lacks \"offline\": messages to offline users "
                                      "will bounce (Prosody loads it implicitly; add it, or list it "
                                      "in modules_disabled to mean it)"))
    from ..config.options import umask_setting
    umask_setting(cfg)     # a ConfigError at the setting if unreadable
    _storage_diagnostics(cfg, warnings, errors)
    _file_diagnostics(cfg, errors)
    from ..core.limits import LimitError, parse_limits
    try:
        parse_limits(cfg.get("limits"))
    except LimitError as exc:
        where = cfg.where("limits")
        errors.append(f"{where.file}:{where.line}:{where.col}: limits: {exc}" if where else f"limits: {exc}")
    return warnings, errors


STORAGE_DRIVERS = ("sqlite", "internal", "sql", "memory")


def _storage_diagnostics(cfg, warnings: list, errors: list[str]) -> None:
    """Every backend ``storage``/``default_storage`` names must be one xmppd has, and
    ``sql`` must name a driver it has (PostgreSQL, or SQLite3: xmppd's own database,
    which is said, so nobody expects their Prosody SQLite file to be read)."""
    from ..config import ConfigWarning
    from ..core.storage_setup import SQL_DRIVERS
    uses_sql = None
    for name in ("storage", "default_storage"):
        where = cfg.where(name)
        if where is None:
            continue
        value = where.value
        drivers = set(value.values()) if isinstance(value, dict) else {value}
        for d in sorted(str(d) for d in drivers):
            if d not in STORAGE_DRIVERS:
                errors.append(f"{where.file}:{where.line}:{where.col}: {name}: unknown storage "
                              f"backend {d!r} (xmppd has {', '.join(STORAGE_DRIVERS)})")
        if "sql" in drivers and uses_sql is None:
            uses_sql = (name, where)
    if uses_sql is None:
        return
    name, where = uses_sql
    sql = cfg.get("sql")
    sql_where = cfg.where("sql") or where
    driver = str(sql.get("driver") or "") if isinstance(sql, dict) else ""
    kind = SQL_DRIVERS.get(driver.lower()) if driver else "sqlite"
    if kind is None:
        errors.append(f"{sql_where.file}:{sql_where.line}:{sql_where.col}: sql: driver "
                      f"{driver!r} is not supported (xmppd has PostgreSQL and SQLite3)")
    elif kind == "sqlite":
        what = f" (sql.driver = {driver!r})" if driver else ""
        warnings.append(ConfigWarning(
            where.file, where.line, where.col,
            f"{name} names \"sql\" with SQLite{what}: xmppd keeps that data in its own "
            "SQLite database (data_path/xmppd.sqlite), not in the file of the sql option"))
    elif not sql.get("database"):
        errors.append(f"{sql_where.file}:{sql_where.line}:{sql_where.col}: sql: PostgreSQL "
                      "needs a database (sql = { driver = \"PostgreSQL\"; database = \"xmppd\"; ... })")


def _writable(path: str) -> str | None:
    """Why a file at ``path`` cannot be written (None when it can): the file, or the
    nearest existing directory above it, must be writable by this user."""
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else "permission denied"
    d = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d):
        return f"{d} is not a directory"
    return None if os.access(d, os.W_OK | os.X_OK) else f"cannot create files in {d} (permission denied)"


def _file_diagnostics(cfg, errors: list[str]) -> None:
    """The files ``log`` and ``pidfile`` name must be writable, by whoever runs the
    check (the unit runs check config as the xmppd user): a Prosody configuration's
    /var/log/prosody/... otherwise passes the check and stops the start."""
    base = cfg.config_dir
    targets = []
    log_setting = cfg.where("log")
    if log_setting is not None:
        spec = log_setting.value
        values = [spec] if isinstance(spec, str) else (
            list(spec.values()) if isinstance(spec, dict) else list(spec) if isinstance(spec, list) else [])
        targets += [("log", log_setting, v) for v in values if isinstance(v, str) and not v.startswith("*")]
    pid = cfg.where("pidfile")
    if pid is not None and isinstance(pid.value, str):
        targets.append(("pidfile", pid, pid.value))
    for name, where, value in targets:
        path = value if os.path.isabs(value) else os.path.join(base, value)
        why = _writable(path)
        if why:
            errors.append(f"{where.file}:{where.line}:{where.col}: {name}: cannot write {path}: {why}")


NOISY_LIBRARIES = ("aiosqlite", "asyncio", "slixmpp", "aiohttp.access")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(cfg, verbose: bool, base_dir: str) -> None:
    """Prosody's ``log`` option: a level → file/``*console``/``*syslog`` table, or a file name."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    spec = cfg.get("log") if cfg is not None else None
    targets: list[tuple[int, str]] = []
    if isinstance(spec, str):
        targets.append((logging.INFO, spec))
    elif isinstance(spec, dict):
        for k, v in spec.items():
            if isinstance(k, str) and k in LEVELS and isinstance(v, str):
                targets.append((LEVELS[k], v))
            elif isinstance(v, str) and v.startswith("*"):
                targets.append((logging.INFO, v))
    elif isinstance(spec, list):
        targets.extend((logging.INFO, v) for v in spec if isinstance(v, str))
    if not targets or verbose:
        targets.append((logging.DEBUG if verbose else logging.INFO, "*console"))
    low = logging.CRITICAL
    for level, target in targets:
        if target == "*console":
            h: logging.Handler = logging.StreamHandler(sys.stderr)
        elif target == "*syslog":
            try:
                h = logging.handlers.SysLogHandler(address="/dev/log")
            except OSError:
                continue
        else:
            path = target if os.path.isabs(target) else os.path.join(base_dir, target)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            h = logging.handlers.WatchedFileHandler(path)  # reopened after logrotate moves it
        h.setLevel(level)
        h.setFormatter(fmt)
        root.addHandler(h)
        low = min(low, level)
    root.setLevel(low)
    # libraries' own debug chatter (aiosqlite logs every statement it runs) would bury
    # xmppd's: only their warnings and errors go to xmppd's log
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def serve(cfg, overrides: list[str] = ()) -> int:
    from ..app import build_server
    from ..config import load_config
    server = build_server(cfg)

    def config_loader():    # a reload reads the files again, with the same --set
        new = load_config(cfg.path)
        apply_overrides(new, list(overrides))
        return new
    server.config_loader = config_loader
    try:
        await server.start()
    except BaseException:
        await server.stop()   # close what was opened (storage, listeners already bound)
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if server.control is not None:
        server.control.on_shutdown = stop.set  # xmppctl's shutdown: the same way out as SIGTERM
    reloads: set[asyncio.Task] = set()

    def on_sighup() -> None:
        task = loop.create_task(reload_and_log(server))
        reloads.add(task)
        task.add_done_callback(reloads.discard)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    pidfile = cfg.get("pidfile")
    if pidfile:
        pidpath = str(server.resolve_path(pidfile))
        os.makedirs(os.path.dirname(pidpath) or ".", exist_ok=True)
        with open(pidpath, "w") as f:
            f.write(f"{os.getpid()}\n")
    hosts = ", ".join(h.name for h in server.hosts.values() if h.is_virtualhost)
    direct = server.ports("c2s_direct_tls")
    log.info("xmppd %s serving %s; c2s on port(s) %s%s; data in %s", __version__,
             hosts or "no hosts", ", ".join(map(str, server.ports("c2s"))) or "-",
             f"; direct TLS on port(s) {', '.join(map(str, direct))}" if direct else "",
             server.data_path)
    log.info("listening on %s", "; ".join(
        f"{name} {', '.join(_addresses(srvs))}" for name, srvs in server.listeners.items() if srvs))
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    if pidfile:
        try:
            os.unlink(pidpath)
        except OSError:
            pass
    log.info("stopped")
    return 0


def _addresses(servers) -> list[str]:
    out = []
    for srv in servers:
        for sock in srv.sockets:
            host, port = sock.getsockname()[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return out


async def reload_and_log(server) -> None:
    """SIGHUP: what ``xmppctl reload`` does, reported in the log."""
    from ..core.control import reload
    log.info("SIGHUP: reloading the configuration and the certificates")
    try:
        report = await reload(server)
    except Exception:
        log.exception("reload failed")
        return
    for c in report["certificates"]:
        if c["error"]:
            log.error("certificate for %s not reloaded: %s", ", ".join(c["names"]), c["error"])
    if report["config_error"]:
        log.error("configuration not applied: %s", report["config_error"])
    log.info("reload done: %d change(s) applied, %d waiting for a restart; %d of %d "
             "certificate(s) renewed", len(report["applied"]), len(report["restart"]),
             sum(1 for c in report["certificates"] if c["changed"]), len(report["certificates"]))


def apply_overrides(cfg, settings: list[str]) -> None:
    """``--set OPTION=VALUE``: global options from the command line (``make run``'s
    address and ports), over what the files say; a bad one is a ConfigError naming
    the argument."""
    from ..config import ConfigError, parse_config_text
    for n, text in enumerate(settings, 1):
        name, eq, value = text.partition("=")
        if not eq or not name.strip().isidentifier():
            raise ConfigError(f"--set #{n}", 0, 0, f"expected OPTION=VALUE, not {text!r}")
        parsed = parse_config_text(f"{name.strip()} = {value}\n", filename=f"--set #{n}")
        if parsed.hosts or len(parsed.globals) != 1:
            raise ConfigError(f"--set #{n}", 0, 0, f"expected one OPTION=VALUE, not {text!r}")
        cfg.globals.update(parsed.globals)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xmppd", description="The xmppd XMPP server.")
    ap.add_argument("--config", "-c", help="main configuration file (default: $XMPPD_CONFIG, "
                    "then /etc/xmppd/xmppd.cfg.lua, then ./xmppd.cfg.lua)")
    ap.add_argument("--verbose", "-v", action="store_true", help="log debug messages to the console")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="override a global option, the value written as in the file "
                         "(--set 'interfaces = { \"127.0.0.1\" }' --set 'c2s_ports = { 5222 }')")
    ap.add_argument("--version", action="version", version=f"xmppd {__version__}")
    args = ap.parse_args(argv)
    path = find_config(args.config)
    from ..config import ConfigError, load_config
    from ..core.server import StartupError
    try:
        cfg = load_config(path)
        apply_overrides(cfg, args.set)
        warnings, errors = diagnose(cfg)
    except ConfigError as exc:
        print(f"xmppd: {exc}", file=sys.stderr)
        return 1
    from ..config.options import umask_setting
    # before anything is created: the database, its WAL, logs (Prosody's umask, 027)
    os.umask(umask_setting(cfg))
    unwritable: list[str] = []
    _file_diagnostics(cfg, unwritable)
    if unwritable:       # the log or the pid file: one line each, with where it is set
        for e in unwritable:
            print(f"xmppd: cannot start: {e}", file=sys.stderr)
        return 1
    try:
        setup_logging(cfg, args.verbose, cfg.config_dir)
    except OSError as exc:
        print(f"xmppd: cannot open the log: {exc}", file=sys.stderr)
        return 1
    for w in warnings:
        log.log(logging.INFO if getattr(w, "level", "") == "info" else logging.WARNING, "%s", w)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(serve(cfg, args.set or []))
        return uvloop.run(serve(cfg, args.set or []))
    except (StartupError, ConfigError) as exc:
        # a port in use, an unreadable certificate, a broken database: one line,
        # naming the option and where it is set (the traceback at debug level)
        log.debug("startup failed", exc_info=True)
        print(f"xmppd: cannot start: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        log.debug("startup failed", exc_info=True)
        print(f"xmppd: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
