"""``xmppctl check certs`` and ``xmppctl cert import``.

``check certs`` says, for every enabled host, which certificate xmppd serves (the
same choice the daemon makes, :func:`xmppd.core.certificates.choose`) and what is
wrong with it: unreadable by the daemon's user, a key that is not the
certificate's, a name it does not cover, a chain that leads nowhere, expiry.
``check config`` reports the same errors.

``cert import [HOST...] DIR...`` copies the certificates found in DIR (certbot's
``/etc/letsencrypt/live``, by the names inside them) into the ``certificates``
directory as ``HOST.crt``/``HOST.key``, as ``prosodyctl cert import`` does, and has
the running xmppd load them. As certbot's deploy hook (``RENEWED_DOMAINS`` set) it
imports the renewed domains only (``contrib/certbot/xmppd-deploy-hook``).
"""
from __future__ import annotations

import datetime
import os
import pwd
import stat
import sys
from pathlib import Path


def _daemon_user(cfg):
    """``(uid, gid, name)`` of the user the daemon runs as when that is not us: the
    owner of its data directory (the unit's ``StateDirectory``), or None."""
    from .ctl import data_path
    try:
        st = data_path(cfg).stat()
    except OSError:
        return None
    if st.st_uid == os.geteuid():
        return None
    try:
        name = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        name = str(st.st_uid)
    return st.st_uid, st.st_gid, name


def _readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid`` (primary group ``gid`` and its supplementary groups) may read
    ``path`` and traverse the directories above it, by the mode bits."""
    try:
        name = pwd.getpwuid(uid).pw_name
        groups = set(os.getgrouplist(name, gid))
    except KeyError:
        groups = {gid}

    def ok(st, bit_u, bit_g, bit_o):
        if uid == 0:
            return True
        if st.st_uid == uid:
            return bool(st.st_mode & bit_u)
        if st.st_gid in groups:
            return bool(st.st_mode & bit_g)
        return bool(st.st_mode & bit_o)

    try:
        p = path.resolve()
        if not ok(p.stat(), stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
            return False
        for d in p.parents:
            if not ok(d.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                return False
    except OSError:
        return False
    return True


def certificate_report(cfg, *, now: datetime.datetime | None = None):
    """``(lines, errors, warnings)``: the text of ``check certs`` and the problems,
    each problem naming the host and the file."""
    from ..core.certificates import choose
    from ..net import certcheck
    from .ctl import _server, resolve
    lines: list[str] = []
    errors: list[str] = []
    warnings: list[str] = []
    daemon = _daemon_user(cfg)
    inspected: dict[tuple[Path, Path], object] = {}
    for c in choose(_server(cfg)):
        lines.append(f"{c.describe}: {c.cert}")
        lines.append(f"  from: {c.source}")
        if c.generated and not c.exists:
            lines.append("  none yet: xmppd generates a self-signed certificate at start")
            continue
        first = (c.cert, c.key) not in inspected
        ssl_opt = cfg.get("ssl", host=c.host)
        cafile = ssl_opt.get("cafile") if isinstance(ssl_opt, dict) else None
        r = inspected.get((c.cert, c.key)) or certcheck.inspect(
            c.cert, c.key, (), now=now, ca_file=str(resolve(cfg, cafile)) if cafile else None)
        inspected[(c.cert, c.key)] = r
        findings = list(r.findings) if first else []
        if r.names and not any(certcheck.name_matches(p, c.host) for p in r.names):
            findings.append(certcheck.Finding(
                "error", f"the certificate is for {', '.join(r.names)}, not {c.host}: clients "
                f"and servers connecting to {c.host} will refuse it"))
        if first and r.not_after is not None:
            lines.append(f"  for {', '.join(r.names) or 'no name'}; issued by {r.issuer}; "
                         f"valid until {r.not_after:%Y-%m-%d} ({r.days_left:.0f} days)")
        elif r.not_after is not None:
            lines.append("  the same certificate as above")
        if first and daemon is not None:
            uid, gid, name = daemon
            for what, p in (("certificate", c.cert), ("key", c.key)):
                if p.exists() and not _readable_by(p, uid, gid):
                    findings.append(certcheck.Finding(
                        "error", f"the {what} file {p} is not readable by {name}, the user xmppd "
                        f"runs as (it owns {_data(cfg)}); e.g. chgrp {name} {p} && chmod g+r {p}"))
        for f in findings:
            lines.append(f"  {f.level}: {f.text}")
            where = f"from {c.source}" if str(c.cert) in f.text else f"{c.cert}, from {c.source}"
            if f.level == "error":
                errors.append(f"{c.host}: {f.text} ({where})")
            elif f.level == "warning":
                warnings.append(f"{c.host}: {f.text} ({where})")
    return lines, errors, warnings


def _data(cfg) -> Path:
    from .ctl import data_path
    return data_path(cfg)


def cmd_check_certs(args, cfg) -> int:
    lines, errors, warnings = certificate_report(cfg)
    for line in lines:
        print(line)
    if errors:
        print(f"{len(errors)} certificate error(s), {len(warnings)} warning(s)", file=sys.stderr)
        return 1
    print(f"certificates: ok ({len(warnings)} warning(s))")
    return 0


# -- cert import ----------------------------------------------------------------------

def _copy(src: Path, dst: Path, mode: int, owner) -> bool:
    """Atomically put ``src``'s bytes at ``dst`` with ``mode`` (and ``owner``'s uid/gid
    when we are root). False when the content was already there."""
    from ..net.tls import write_private
    data = src.read_bytes()
    try:
        if dst.read_bytes() == data and (dst.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    write_private(dst, data, mode)
    if owner is not None:
        os.chown(dst, owner[0], owner[1])
    return True


def cmd_cert_import(args, cfg) -> int:
    from ..core.certificates import choose
    from ..net import certcheck
    from ..net.tls import find_certificate
    from .ctl import CtlError, NOT_RUNNING, _server, call_running, resolve
    hosts_cfg = {h.name: h for h in cfg.hosts.values() if h.enabled}
    words = list(args.args)
    hosts = []
    while words and words[0] in hosts_cfg:
        hosts.append(words.pop(0))
    paths = words
    if not paths:
        raise CtlError("cert import needs a directory to import from, e.g. "
                       "xmppctl cert import /etc/letsencrypt/live")
    for p in paths:
        if not Path(p).is_dir():
            hint = f" ({p} is not a configured host: {', '.join(hosts_cfg)})" if "/" not in p else ""
            raise CtlError(f"{p}: no such directory{hint}")
    if not hosts:
        renewed = os.environ.get("RENEWED_DOMAINS", "").split()    # certbot's deploy hook
        hosts = [h for h in renewed if h in hosts_cfg] if renewed else list(hosts_cfg)
        if renewed and not hosts:
            print(f"none of the renewed domains ({' '.join(renewed)}) is a host of {cfg.path}")
            return 0
    hosts.sort(key=lambda h: (len(h), h))    # parents first: their files may serve sub-domains
    certdir = resolve(cfg, cfg.get("certificates", default="certs"))
    daemon = _daemon_user(cfg) if os.geteuid() == 0 else None
    owner = (daemon[0], daemon[1]) if daemon else None
    try:
        certdir.mkdir(parents=True, exist_ok=True)
        if owner and certdir.stat().st_uid == 0:
            os.chown(certdir, 0, owner[1])
            os.chmod(certdir, 0o750)
    except OSError as exc:
        raise CtlError(f"cannot create the certificates directory {certdir}: {exc.strerror}") from None
    index = certcheck.index_certificates(paths)
    imported: dict[str, Path] = {}      # host -> source certificate
    copied = 0
    failed = False
    now = datetime.datetime.now(datetime.timezone.utc)
    for host in hosts:
        pair = certcheck.pick_for(index, host)
        if pair is None:
            print(f"{host}: no certificate for it in {', '.join(paths)}")
            failed = True
            continue
        cert, key = pair
        r = certcheck.inspect(cert, key, [host], now=now)
        bad = [e for e in r.errors if "expires within a day" not in e]
        if bad:
            print(f"{host}: {cert} not imported: {bad[0]}")
            failed = True
            continue
        found = find_certificate(host, certdir)
        parent_src = next((src for h, src in imported.items()
                           if found is not None and found[0] == certdir / f"{h}.crt"), None)
        if parent_src is not None and parent_src.resolve() == cert.resolve():
            print(f"{host}: served with {found[0]} (the same certificate)")
            imported[host] = cert
            continue
        dst_cert, dst_key = certdir / f"{host}.crt", certdir / f"{host}.key"
        try:
            changed = _copy(key, dst_key, 0o600, owner)
            changed = _copy(cert, dst_cert, 0o644, owner) or changed
        except OSError as exc:
            raise CtlError(f"cannot write to {certdir}: {exc.strerror}") from None
        copied += changed
        imported[host] = cert
        print(f"{host}: {'imported' if changed else 'unchanged'} {cert} -> {dst_cert} "
              f"(valid until {r.not_after:%Y-%m-%d})")
    # a host whose ssl option names other files does not use the imported ones
    by_host = {c.host: c for c in choose(_server(cfg))}
    for host in imported:
        c = by_host.get(host)
        if c is not None and c.explicit and c.cert.parent != certdir:
            print(f"note: {host}'s {c.source} names {c.cert}, which xmppd uses instead; remove "
                  f"the certificate and key from its ssl option to use the imported one")
    if not imported:
        print("no certificate imported", file=sys.stderr)
        return 1
    if copied:
        r = call_running(cfg, "reload", required=False)
        if r is NOT_RUNNING:
            print("xmppd is not running: it uses them when it starts")
        else:
            for c in r["certificates"]:
                if c["error"]:
                    failed = True
                    print(f"xmppd: certificate for {', '.join(c['names'])} NOT loaded, the old "
                          f"one stays: {c['error']}")
                elif c["changed"]:
                    print(f"xmppd: now serving {c['certificate']} for {', '.join(c['names'])}")
    return 1 if failed else 0
