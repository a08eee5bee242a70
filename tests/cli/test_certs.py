"""Certificates as an admin meets them: ``xmppctl check certs`` (and ``check config``,
and the daemon at start) naming the host and the file of every problem; ``xmppctl
cert import`` from a certbot tree, with the running xmppd loading what was imported;
files changed on disk served without a restart; expiry warnings in the log.

Certificates come from trustme CAs; what xmppd serves is read from real TLS
handshakes."""
from __future__ import annotations

import asyncio
import datetime
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from .conftest import DOMAIN, program, run_ctl, run_ctl_here, write_tree

MUC = f"conference.{DOMAIN}"
HOOK = Path(__file__).parents[2] / "contrib" / "certbot" / "xmppd-deploy-hook"
NOW = datetime.datetime.now(datetime.timezone.utc)


def issue(ca: trustme.CA, d, stem: str, *names: str, chain: bool = True, **kw):
    """``(crt, key)`` paths of a certificate for ``names`` (``chain``: with the
    intermediates, as certbot's fullchain.pem)."""
    cert = ca.issue_cert(*(names or (DOMAIN, f"*.{DOMAIN}")), **kw)
    crt, key = d / f"{stem}.crt", d / f"{stem}.key"
    pems = cert.cert_chain_pems if chain else cert.cert_chain_pems[:1]
    crt.write_bytes(b"".join(p.bytes() for p in pems))
    cert.private_key_pem.write_to_path(str(key))
    return crt, key


def ctl(cfg, *args, **kw):
    """``check`` in-process (it only reads: the same code without an interpreter's
    start-up); ``cert import``, which writes files with the daemon's modes and owner,
    as the real program."""
    if args[0] == "check" and not kw:
        return run_ctl_here("--config", str(cfg), *args)
    return run_ctl("--config", str(cfg), *args, **kw)


def served(port: int, name: str) -> x509.Certificate:
    """The certificate xmppd presents to a client asking for ``name`` (SNI)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return x509.load_der_x509_certificate(t.getpeercert(binary_form=True))


def serial_of(crt) -> int:
    return x509.load_pem_x509_certificates(crt.read_bytes())[0].serial_number


async def until(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        v = await asyncio.to_thread(pred)
        if v:
            return v
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


# -- check certs ----------------------------------------------------------------------

def test_check_certs_good_chain_and_names(tmp_path):
    root = trustme.CA()
    inter = root.create_child_ca()
    crt, key = issue(inter, tmp_path, "good")
    root.cert_pem.write_to_path(str(tmp_path / "root.pem"))
    cfg = write_tree(tmp_path, {"crt": str(crt), "key": str(key)})
    host = cfg.parent / "conf.avail" / f"{DOMAIN}.cfg.lua"
    host.write_text(host.read_text().replace(
        "; }", f'; cafile = "{tmp_path / "root.pem"}"; }}') + f'Component "{MUC}" "muc"\n')
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"VirtualHost '{DOMAIN}': {crt}" in r.stdout
    assert f"for {DOMAIN}, *.{DOMAIN}; issued by " in r.stdout
    assert "valid until" in r.stdout
    assert f"Component '{MUC}' \"muc\": {crt}" in r.stdout     # the parent's ssl applies
    assert "error:" not in r.stdout and "warning:" not in r.stdout, r.stdout
    assert "certificates: ok (0 warning(s))" in r.stdout

    # the leaf alone (certbot's cert.pem instead of fullchain.pem): the chain is broken
    crt.write_bytes(crt.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                    + b"-----END CERTIFICATE-----\n")
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 0
    assert "warning: the chain from " in r.stdout
    assert "use the full chain (certbot's fullchain.pem, not cert.pem)" in r.stdout


def test_check_certs_errors_name_the_host_and_the_file(tmp_path, start_daemon):
    ca = trustme.CA()
    crt, key = issue(ca, tmp_path, "a")
    _other_crt, other_key = issue(ca, tmp_path, "b")
    cfg = write_tree(tmp_path, {"crt": str(crt), "key": str(other_key)})
    for args in (("check", "certs"), ("check", "config")):
        r = ctl(cfg, *args)
        assert r.returncode == 1
        assert (f"error: {'xmppd.test: ' if args[1] == 'config' else ''}the key {other_key} does not "
                f"belong to the certificate {crt}") in r.stdout, r.stdout
    assert "from ssl at " in ctl(cfg, "check", "config").stdout
    d = start_daemon(cfg)
    assert d.wait() != 0
    assert f"{DOMAIN}: the key {other_key} does not belong to the certificate {crt}" in d.output()
    assert "(certificate from ssl at " in d.output()


def test_wrong_name_and_expiry(tmp_path, start_daemon):
    ca = trustme.CA()
    crt, key = issue(ca, tmp_path, "other", "example.org")
    cfg = write_tree(tmp_path, {"crt": str(crt), "key": str(key)})
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 1
    assert (f"error: the certificate is for example.org, not {DOMAIN}: clients and servers "
            f"connecting to {DOMAIN} will refuse it") in r.stdout
    # the daemon serves it (as Prosody does) but says so, with the host and the file
    d = start_daemon(cfg).wait_ready()
    assert f"{DOMAIN}: the certificate is for example.org, not {DOMAIN}" in d.output()
    assert str(crt) in d.output()
    d.stop()

    issue(ca, tmp_path, "other", DOMAIN, not_after=NOW + datetime.timedelta(days=5))
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 0
    assert "warning: the certificate expires within a week" in r.stdout
    d = start_daemon(cfg).wait_ready()
    assert f"the certificate {crt} for {DOMAIN} expires in 5 day(s)" in d.output() \
        or f"the certificate {crt} for {DOMAIN} expires in 4 day(s)" in d.output()
    d.stop()

    issue(ca, tmp_path, "other", DOMAIN, not_before=NOW - datetime.timedelta(days=90),
          not_after=NOW - datetime.timedelta(days=1))
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 1
    assert f"error: the certificate expired on {(NOW - datetime.timedelta(days=1)):%Y-%m-%d}" in r.stdout


def test_key_the_daemon_user_cannot_read(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the data directory to another user")
    nobody = pwd.getpwnam("nobody")
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    crt, key = issue(ca, certs, DOMAIN)
    os.chmod(key, 0o600)                      # root's, as certbot leaves it
    cfg = write_tree(tmp_path, {"crt": str(crt), "key": str(key)})
    (tmp_path / "var").mkdir()
    os.chown(tmp_path / "var", nobody.pw_uid, nobody.pw_gid)   # the daemon's user
    os.chmod(tmp_path, 0o755)
    r = ctl(cfg, "check", "certs")
    assert r.returncode == 1
    assert (f"error: the key file {key} is not readable by nobody, the user xmppd runs as "
            f"(it owns {tmp_path / 'var'})") in r.stdout, r.stdout


# -- cert import ----------------------------------------------------------------------

def certbot_tree(tmp_path, ca, name, *names, version=1, **kw):
    """certbot's layout: live/NAME/{fullchain,privkey}.pem -> ../../archive/NAME/*N.pem"""
    archive = tmp_path / "letsencrypt" / "archive" / name
    live = tmp_path / "letsencrypt" / "live" / name
    archive.mkdir(parents=True, exist_ok=True)
    live.mkdir(parents=True, exist_ok=True)
    crt, key = issue(ca, archive, f"v{version}", *names, **kw)
    for link, target in (("fullchain.pem", crt), ("privkey.pem", key)):
        (live / link).unlink(missing_ok=True)
        (live / link).symlink_to(os.path.relpath(target, live))
    return tmp_path / "letsencrypt" / "live", crt


async def test_cert_import_from_certbot_into_the_running_server(tmp_path, start_daemon):
    cfg = write_tree(tmp_path, None, ssl=False)
    host = cfg.parent / "conf.avail" / f"{DOMAIN}.cfg.lua"
    host.write_text(host.read_text() + f'Component "{MUC}" "muc"\n')
    d = start_daemon(cfg).wait_ready()          # self-signed, generated
    first = await asyncio.to_thread(served, d.tls_port, DOMAIN)
    assert first.issuer == first.subject

    ca = trustme.CA()
    live, src = certbot_tree(tmp_path, ca, DOMAIN, DOMAIN, f"*.{DOMAIN}")
    certbot_tree(tmp_path, ca, "example.org", "example.org")   # not ours: ignored
    r = await asyncio.to_thread(ctl, cfg, "cert", "import", str(live))
    assert r.returncode == 0, r.stdout + r.stderr
    certs = cfg.parent / "certs"
    assert f"{DOMAIN}: imported {live / DOMAIN / 'fullchain.pem'} -> {certs / (DOMAIN + '.crt')}" \
        in r.stdout
    assert f"{MUC}: served with {certs / (DOMAIN + '.crt')} (the same certificate)" in r.stdout
    assert f"xmppd: now serving {certs / (DOMAIN + '.crt')} for {DOMAIN}" in r.stdout
    assert (certs / f"{DOMAIN}.key").stat().st_mode & 0o077 == 0
    now = await asyncio.to_thread(served, d.tls_port, DOMAIN)
    assert now.serial_number == serial_of(src)
    muc = await asyncio.to_thread(served, d.tls_port, MUC)
    assert muc.serial_number == serial_of(src)

    # certbot renews and runs the deploy hook: RENEWED_DOMAINS names what it renewed
    live, src2 = certbot_tree(tmp_path, ca, DOMAIN, DOMAIN, f"*.{DOMAIN}", version=2)
    env = dict(os.environ, RENEWED_DOMAINS=f"{DOMAIN} unrelated.example")
    r = await asyncio.to_thread(
        subprocess.run, [str(HOOK)], capture_output=True, text=True, timeout=60,
        env=dict(env, XMPPCTL=" ".join(program("xmppctl")), XMPPD_CONFIG=str(cfg),
                 LETSENCRYPT_LIVE=str(live)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{DOMAIN}: imported" in r.stdout
    assert f"{MUC}: " not in r.stdout           # not renewed: not looked at
    now = await asyncio.to_thread(served, d.tls_port, DOMAIN)
    assert now.serial_number == serial_of(src2)

    # the same again changes nothing; nothing for a host is an error
    r = await asyncio.to_thread(ctl, cfg, "cert", "import", DOMAIN, str(live))
    assert r.returncode == 0 and f"{DOMAIN}: unchanged" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = await asyncio.to_thread(ctl, cfg, "cert", "import", str(empty))
    assert r.returncode == 1
    assert f"{DOMAIN}: no certificate for it in {empty}" in r.stdout
    r = await asyncio.to_thread(ctl, cfg, "cert", "import", "nosuch.example")
    assert r.returncode == 1 and "nosuch.example: no such directory" in r.stderr


def test_cert_import_refuses_a_mismatched_or_expired_pair(tmp_path):
    cfg = write_tree(tmp_path, None, ssl=False)
    ca = trustme.CA()
    live, crt = certbot_tree(tmp_path, ca, DOMAIN, DOMAIN, not_after=NOW - datetime.timedelta(days=1),
                             not_before=NOW - datetime.timedelta(days=30))
    r = ctl(cfg, "cert", "import", str(live))
    assert r.returncode == 1
    assert f"{DOMAIN}: {live / DOMAIN / 'fullchain.pem'} not imported: the certificate expired on" in r.stdout
    assert not (cfg.parent / "certs" / f"{DOMAIN}.crt").exists()


# -- changed on disk: served without a restart ----------------------------------------------

async def test_certificate_files_changed_on_disk_are_served(tmp_path, start_daemon):
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    crt, key = issue(ca, certs, DOMAIN)
    cfg = write_tree(tmp_path, {"crt": str(crt), "key": str(key)},
                     extra="certificate_check_interval = 0.2\n")
    d = start_daemon(cfg).wait_ready()
    assert (await asyncio.to_thread(served, d.tls_port, DOMAIN)).serial_number == serial_of(crt)

    # a broken pair (only the certificate written yet): the old one stays, and it is logged
    old_serial = serial_of(crt)
    issue(trustme.CA(), tmp_path, "mismatch")
    shutil.copy(tmp_path / "mismatch.crt", crt)
    await until(lambda: "changed on disk but cannot be used, the old one stays" in d.output())
    assert (await asyncio.to_thread(served, d.tls_port, DOMAIN)).serial_number == old_serial
    # the key follows: the new pair is served
    shutil.copy(tmp_path / "mismatch.key", key)
    new = serial_of(crt)
    await until(lambda: served(d.tls_port, DOMAIN).serial_number == new)
    assert f"certificate for {DOMAIN} reloaded from {crt}" in d.output()
