"""Federation fixtures: a local DNS server, test CAs, and xmppd instances by domain.

Every server here finds its peers through real SRV/A queries to :class:`TestDNS`
(``dns_nameservers = { "127.0.0.1:PORT" }``); nothing bypasses resolution.
"""
from __future__ import annotations

import datetime
import textwrap

import pytest
import trustme

from xmppd.config import parse_config_text
from xmppd.app import build_server

from .dnsserver import TestDNS


@pytest.fixture(scope="session")
def dns_server():
    d = TestDNS().start()
    yield d
    d.stop()


@pytest.fixture
def dns(dns_server):
    """The session's DNS server, emptied after each test."""
    yield dns_server
    with dns_server.lock:
        dns_server.records.clear()
        dns_server.names.clear()
        dns_server.queries.clear()


class CAs:
    """Test certificate authorities; ``issue(ca, domain)`` writes cert/key files."""

    def __init__(self, base):
        self.base = base
        self.cas: dict[str, trustme.CA] = {}

    def ca(self, name: str) -> trustme.CA:
        if name not in self.cas:
            self.cas[name] = trustme.CA(organization_name=f"xmppd test CA {name}")
            self.cas[name].cert_pem.write_to_path(str(self.base / f"ca-{name}.pem"))
        return self.cas[name]

    def cafile(self, name: str) -> str:
        self.ca(name)
        return str(self.base / f"ca-{name}.pem")

    def issue(self, ca_name: str, domain: str, *extra: str) -> tuple[str, str]:
        d = self.base / ca_name
        d.mkdir(exist_ok=True)
        crt, key = d / f"{domain}.crt", d / f"{domain}.key"
        if not crt.exists():
            # a year, not trustme's default (year 3000): ejabberd's pkix crashes on
            # an expiry timer that far away
            not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
            cert = self.ca(ca_name).issue_cert(domain, f"*.{domain}", *extra, not_after=not_after)
            cert.private_key_pem.write_to_path(str(key))
            # leaf + chain (trustme's chain is just the leaf for a root-issued cert)
            crt.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
            key.chmod(0o600)
        return str(crt), str(key)


@pytest.fixture(scope="session")
def cas(tmp_path_factory):
    return CAs(tmp_path_factory.mktemp("s2s-certs"))


class Node:
    """One running xmppd serving ``domain``."""

    def __init__(self, server: Server, domain: str, cafile: str):
        self.server = server
        self.domain = domain
        self.cafile = cafile
        self.port = server.ports("c2s")[0]
        self.s2s_port = server.ports("s2s")[0]
        self.tls_port = None
        self.clients: list = []   # for tests.e2e.imhelpers.connect

    async def adduser(self, jid: str, password: str = "secret") -> str:
        user, host = jid.split("@")
        await self.server.accounts.create(host, user, password)
        return jid

    @property
    def s2s(self):
        return self.server.s2s

    async def stop(self):
        await self.server.stop()


async def start_node(tmp_path, dns: TestDNS, domain: str, cert: tuple[str, str], cafile: str, *,
                     extra: str = "", modules=("dialback", "ping", "disco"), publish: bool = True,
                     direct_tls: bool = False, host_extra: str = "") -> Node:
    d = tmp_path / domain
    d.mkdir(exist_ok=True)
    mods = ", ".join(f'"{m}"' for m in modules)
    text = textwrap.dedent(f"""
        interfaces = {{ "127.0.0.1" }}
        c2s_ports = {{ 0 }}
        s2s_ports = {{ 0 }}
        s2s_direct_tls_ports = {{ {"0" if direct_tls else ""} }}
        data_path = "{d}/data"
        storage = "memory"
        modules_enabled = {{ {mods} }}
        dns_nameservers = {{ "{dns.spec}" }}
        s2s_timeout = 10
        ssl = {{ cafile = "{cafile}" }}
    """) + textwrap.dedent(extra) + textwrap.dedent(f"""
        VirtualHost "{domain}"
            ssl = {{ certificate = "{cert[0]}"; key = "{cert[1]}"; cafile = "{cafile}"; }}
    """) + textwrap.dedent(host_extra)
    path = d / "xmppd.cfg.lua"
    path.write_text(text)
    cfg = parse_config_text(text, filename=str(path), base_dir=str(d))
    server = build_server(cfg)
    await server.start()
    node = Node(server, domain, cafile)
    if publish:
        if direct_tls:
            node.s2s_tls_port = server.ports("s2s_direct_tls")[0]
            dns.srv(f"_xmpps-server._tcp.{domain}", domain, node.s2s_tls_port)
        dns.srv(f"_xmpp-server._tcp.{domain}", domain, node.s2s_port)
        dns.a(domain, "127.0.0.1")
    return node
