"""TLS on the wire: the certificate is chosen per VirtualHost (SNI for direct
TLS, the stream's 'to' for STARTTLS), and direct TLS negotiates ALPN xmpp-client."""
from __future__ import annotations

import ssl

import pytest

from .rawclient import Raw


def peer_names(raw: Raw) -> set[str]:
    cert = raw.writer.get_extra_info("peercert")
    return {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}


@pytest.mark.parametrize("domain", ["xmppd.test", "other.test"])
async def test_direct_tls_sni_and_alpn(xmppd, domain):
    ctx = ssl.create_default_context(cafile=xmppd.cafile)
    ctx.set_alpn_protocols(["xmpp-client"])
    raw = await Raw.connect(xmppd.tls_port, ssl_ctx=ctx, server_hostname=domain)
    try:
        assert raw.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "xmpp-client"
        assert domain in peer_names(raw)
        feats = await raw.open(to=domain)
        assert "SCRAM-SHA-256-PLUS" in feats   # already encrypted: SASL at once, no STARTTLS
        assert "starttls" not in feats
    finally:
        raw.close()


@pytest.mark.parametrize("domain", ["xmppd.test", "other.test"])
async def test_starttls_uses_the_hosts_certificate(xmppd, domain):
    raw = await Raw.connect(xmppd.port)
    try:
        await raw.open(to=domain)
        await raw.starttls(xmppd.cafile, server_hostname=domain)   # verifies the name
        assert domain in peer_names(raw)
    finally:
        raw.close()
