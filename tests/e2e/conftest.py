"""End-to-end fixtures: the real server, in-process, on 127.0.0.1 ephemeral ports.

Two VirtualHosts (``xmppd.test`` and ``other.test``) with certificates from a
trustme CA; clients are real libraries (slixmpp, aioxmpp) that verify them.
"""
from __future__ import annotations

import asyncio
import os
import textwrap

import pytest
import trustme

from xmppd.config import parse_config_text
from xmppd.app import build_server

DOMAIN = "xmppd.test"
OTHER = "other.test"
# the HTTP service on ephemeral ports (extra= of start_server)
HTTP = """
http_ports = { 0 }
https_ports = { 0 }
http_interfaces = { "127.0.0.1" }
https_interfaces = { "127.0.0.1" }
"""


@pytest.fixture(scope="session")
def ca():
    return trustme.CA()


@pytest.fixture(scope="session")
def certs(ca, tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    out = {}
    for name in (DOMAIN, OTHER):
        cert = ca.issue_cert(name, f"*.{name}")
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
        cert.cert_chain_pems[0].write_to_path(str(d / f"{name}.crt"))
        out[name] = (str(d / f"{name}.crt"), str(d / f"{name}.key"))
    cafile = d / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    out["ca"] = str(cafile)
    return out


class RunningServer:
    def __init__(self, server: Server, cafile: str):
        self.server = server
        self.cafile = cafile
        self.port = server.ports("c2s")[0]
        tls_ports = server.ports("c2s_direct_tls")
        self.tls_port = tls_ports[0] if tls_ports else None
        self.domain = DOMAIN

    async def adduser(self, jid: str, password: str = "secret") -> str:
        user, host = jid.split("@")
        await self.server.accounts.create(host, user, password)
        return jid


# XMPPD_TEST_STORAGE=sql: the servers keep their data in PostgreSQL (tests/pg.py),
# one database per test directory (a test that restarts its server finds its data);
# `make test` runs a representative subset once more so
STORAGE = os.environ.get("XMPPD_TEST_STORAGE", "sqlite")
_pg_databases: dict[str, str] = {}


def storage_config(tmp_path, storage: str | None = None) -> str:
    if (storage or STORAGE) != "sql":
        return 'storage = "sqlite"'
    from tests import pg
    if not pg.available():
        why = "XMPPD_TEST_STORAGE=sql needs PostgreSQL (apt-get install postgresql)"
        if os.environ.get("XMPPD_REQUIRE_EXTERNAL"):
            pytest.fail(why)
        pytest.skip(why)
    db = _pg_databases.get(str(tmp_path))
    if db is None:
        db = _pg_databases[str(tmp_path)] = pg.cluster().new_database()["database"]
    return 'storage = "sql"\n        ' + pg.cluster().sql_table(db)


async def open_test_storage(tmp_path):
    """The storage a server started in ``tmp_path`` keeps its data in (for a test
    that looks at it while the server is stopped)."""
    from xmppd.storage import open_storage
    if str(tmp_path) in _pg_databases:
        from tests import pg
        return await open_storage("postgres", **pg.cluster().options(_pg_databases[str(tmp_path)]))
    return await open_storage("sqlite", path=str(tmp_path / "data" / "xmppd.sqlite"))


def make_config(tmp_path, certs, extra: str = "", host_extra: str = "",
                storage: str | None = None) -> str:
    text = textwrap.dedent(f"""
        admins = {{ "admin@{DOMAIN}" }}
        interfaces = {{ "127.0.0.1" }}
        c2s_ports = {{ 0 }}
        c2s_direct_tls_ports = {{ 0 }}
        s2s_ports = {{ 0 }}
        data_path = "{tmp_path}/data"
        control_socket = false
        {storage_config(tmp_path, storage)}
        modules_enabled = {{ "disco", "ping", "version", "time" }}
        -- Prosody's default read rate (10kb/s) would make the bulk tests slow (a
        -- 300 kB stanza takes 30 s); test_limits.py tests the limits themselves
        limits = {{ c2s = {{ rate = "10mb/s" }} }}
    """) + extra + textwrap.dedent(f"""
        VirtualHost "{DOMAIN}"
            ssl = {{ certificate = "{certs[DOMAIN][0]}"; key = "{certs[DOMAIN][1]}"; }}
    """) + host_extra + textwrap.dedent(f"""
        VirtualHost "{OTHER}"
            ssl = {{ certificate = "{certs[OTHER][0]}"; key = "{certs[OTHER][1]}"; }}
    """)
    return text


@pytest.fixture
async def xmppd(tmp_path, certs, request):
    """A running server; ``@pytest.mark.parametrize`` can't reach it, so tests
    that need other options build their own with ``start_server``."""
    srv = await start_server(tmp_path, certs)
    try:
        yield srv
    finally:
        await srv.server.stop()


async def start_server(tmp_path, certs, extra: str = "", host_extra: str = "",
                       storage: str | None = None) -> RunningServer:
    """``storage="sql"``: in PostgreSQL whatever XMPPD_TEST_STORAGE says."""
    text = make_config(tmp_path, certs, extra, host_extra, storage)
    path = tmp_path / "xmppd.cfg.lua"
    path.write_text(text)
    cfg = parse_config_text(text, filename=str(path), base_dir=str(tmp_path))
    server = build_server(cfg)
    await server.start()
    return RunningServer(server, certs["ca"])
