"""ACME against a real ACME server: Debian's ``pebble`` (Let's Encrypt's test CA),
with ``pebble-challtestsrv`` as its DNS (every name is 127.0.0.1). xmppd answers
pebble's HTTP-01 checks on its HTTP service, serves the certificate it obtained
to clients (read from real TLS handshakes, verified against pebble's root), keeps
it over a restart and renews it when it is due."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
import urllib.request

import pytest
import trustme
from cryptography import x509

from xmppd.app import build_server
from xmppd.config import parse_config_text

pytestmark = pytest.mark.external("pebble")

DOMAIN = "falcot.test"
MUC = f"conference.{DOMAIN}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pebble:
    def __init__(self, tmp_path):
        if not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"):
            pytest.skip("pebble is not installed (apt-get install pebble)")
        self.dir = tmp_path / "pebble"
        self.dir.mkdir()
        self.ca = trustme.CA()          # pebble's own HTTPS
        served = self.ca.issue_cert("127.0.0.1", "localhost")
        served.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        served.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
        self.ca.cert_pem.write_to_path(str(self.dir / "ca.pem"))
        self.cafile = str(self.dir / "ca.pem")
        self.port, self.mgmt, self.dns, self.dns_mgmt = (free_port() for _ in range(4))
        self.http_port = free_port()    # where pebble checks HTTP-01: xmppd's http_ports
        (self.dir / "config.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt}",
            "certificate": str(self.dir / "cert.pem"), "privateKey": str(self.dir / "key.pem"),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        self.procs = []
        self._log = log = open(self.dir / "log", "wb")
        self.procs.append(subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
             "-dns01", f"127.0.0.1:{self.dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{self.dns_mgmt}"], stdout=log, stderr=subprocess.STDOUT))
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0", "PATH": "/usr/bin:/bin"}
        self.procs.append(subprocess.Popen(
            ["pebble", "-config", str(self.dir / "config.json"), "-dnsserver", f"127.0.0.1:{self.dns}"],
            stdout=log, stderr=subprocess.STDOUT, env=env))
        self.directory = f"https://127.0.0.1:{self.port}/dir"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                self.get(self.directory)
                break
            except OSError:
                assert time.monotonic() < deadline, (self.dir / "log").read_text()
                time.sleep(0.1)

    def get(self, url: str) -> bytes:
        ctx = ssl.create_default_context(cafile=self.cafile)
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return r.read()

    def roots(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.get(f"https://127.0.0.1:{self.mgmt}/roots/0"))

    def log(self) -> str:
        return (self.dir / "log").read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self._log.close()


@pytest.fixture
def pebble(tmp_path):
    p = Pebble(tmp_path)
    try:
        p.wait_ready()
    except BaseException:
        p.stop()
        raise
    yield p
    p.stop()


async def start(tmp_path, pebble, acme_extra: str = ""):
    text = textwrap.dedent(f"""
        interfaces = {{ "127.0.0.1" }}
        c2s_ports = {{ 0 }}
        c2s_direct_tls_ports = {{ 0 }}
        s2s_ports = {{ 0 }}
        http_ports = {{ {pebble.http_port} }}
        http_interfaces = {{ "127.0.0.1" }}
        https_ports = {{ 0 }}
        https_interfaces = {{ "127.0.0.1" }}
        data_path = "{tmp_path}/data"
        control_socket = false
        acme = {{ contact = "mailto:admin@{DOMAIN}"; directory = "{pebble.directory}";
                  ca_file = "{pebble.cafile}"; {acme_extra} }}
        VirtualHost "{DOMAIN}"
        Component "{MUC}" "muc"
    """)
    path = tmp_path / "xmppd.cfg.lua"
    path.write_text(text)
    server = build_server(parse_config_text(text, filename=str(path), base_dir=str(tmp_path)))
    await server.start()
    return server


def served(port: int, name: str) -> list[x509.Certificate]:
    """The chain xmppd presents to a client asking for ``name``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return [x509.load_der_x509_certificate(t.getpeercert(binary_form=True))]


def verified(port: int, name: str, roots_pem: bytes) -> x509.Certificate:
    """A handshake that checks the chain against pebble's root and the name."""
    ctx = ssl.create_default_context(cadata=roots_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return x509.load_der_x509_certificate(t.getpeercert(binary_form=True))


async def until(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        v = await asyncio.to_thread(pred)
        if v:
            return v
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


def issued_by_pebble(port, name, roots_pem):
    try:
        return verified(port, name, roots_pem)
    except ssl.SSLError:
        return None


async def test_certificates_obtained_served_kept_and_renewed(tmp_path, pebble, caplog):
    caplog.set_level("INFO", logger="xmppd")
    server = await start(tmp_path, pebble)
    tls = server.ports("c2s_direct_tls")[0]
    try:
        from cryptography.hazmat.primitives import serialization
        roots_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pebble.roots())
        first = await until(lambda: issued_by_pebble(tls, DOMAIN, roots_pem))
        # one certificate for the host and its component, verified for both names
        muc = await asyncio.to_thread(verified, tls, MUC, roots_pem)
        assert muc.serial_number == first.serial_number
        names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([DOMAIN, MUC])
        crt = tmp_path / "data" / "acme" / f"{DOMAIN}.crt"
        key = tmp_path / "data" / "acme" / f"{DOMAIN}.key"
        assert key.stat().st_mode & 0o077 == 0
        assert (tmp_path / "data" / "acme" / "account.json").stat().st_mode & 0o077 == 0
        assert f"ACME: certificate for {DOMAIN}, {MUC} obtained, valid until" in caplog.text
        assert "fetched the challenge" in caplog.text
    finally:
        await server.stop()

    # a restart serves the same certificate at once, without asking again
    caplog.clear()
    server = await start(tmp_path, pebble)
    tls = server.ports("c2s_direct_tls")[0]
    try:
        again = await asyncio.to_thread(verified, tls, DOMAIN, roots_pem)
        assert again.serial_number == first.serial_number
        await asyncio.sleep(0.5)
        assert "asking" not in caplog.text
    finally:
        await server.stop()

    # due for renewal (renew_before longer than its life): a new one, same account
    account = (tmp_path / "data" / "acme" / "account.json").read_text()
    server = await start(tmp_path, pebble, "renew_before = 100000;")
    tls = server.ports("c2s_direct_tls")[0]
    try:
        await until(lambda: verified(tls, DOMAIN, roots_pem).serial_number != first.serial_number)
        assert "renewing" in caplog.text
        assert (tmp_path / "data" / "acme" / "account.json").read_text() == account
        assert crt.exists()
    finally:
        await server.stop()


async def test_a_failed_check_is_logged_and_the_server_keeps_running(tmp_path, pebble, caplog):
    """pebble checks a port nobody answers on: the error names the names and the
    cause; the server keeps serving its self-signed certificate."""
    pebble.http_port = free_port()   # pebble checks the port it was given; xmppd is not there
    server = await start(tmp_path, pebble)
    tls = server.ports("c2s_direct_tls")[0]
    try:
        await until(lambda: "ACME: no certificate for" in caplog.text)
        assert f"ACME: no certificate for {DOMAIN}, {MUC} from {pebble.directory}" in caplog.text
        assert "trying again in" in caplog.text
        chain = await asyncio.to_thread(served, tls, DOMAIN)
        assert chain[0].issuer == chain[0].subject          # still the self-signed one
    finally:
        await server.stop()
