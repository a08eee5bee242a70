"""Certificates and TLS contexts, checked with real handshakes over loopback."""
from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import stat

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from scramp import ScramClient

from xmppd.core.credentials import make_credentials
from xmppd.net.tls import (
    CertificateStore, cert_names, find_certificate, generate_self_signed, load_cert_der,
    make_server_context, name_matches, tls_server_end_point,
)
from xmppd.protocol.sasl import SASLServer, offered_mechanisms


@pytest.fixture
def two_hosts(tmp_path):
    """Self-signed certificates for example.com (+conference) and example.org."""
    a = (tmp_path / "certs" / "example.com.crt", tmp_path / "certs" / "example.com.key")
    b = (tmp_path / "other" / "example.org.pem", tmp_path / "other" / "example.org-key.pem")
    generate_self_signed("example.com", *a, extra_names=["conference.example.com"])
    generate_self_signed("example.org", *b, wildcard=True)
    return a, b


async def handshake(server_ctx, client_ctx, server_hostname):
    """One TLS connection over loopback; returns (client ssl_object, server ssl_object)."""
    got = asyncio.get_running_loop().create_future()

    async def on_client(reader, writer):
        got.set_result(writer.get_extra_info("ssl_object"))
        await reader.read()          # until the client closes
        writer.close()

    srv = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname)
        client_obj = writer.get_extra_info("ssl_object")
        server_obj = await asyncio.wait_for(got, 5)
        writer.close()
        await writer.wait_closed()
        return client_obj, server_obj
    finally:
        srv.close()
        await srv.wait_closed()


# --- files ------------------------------------------------------------------------------

def test_generate_self_signed(two_hosts):
    (crt, key), (crt2, key2) = two_hosts
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key2).st_mode) == 0o600
    assert crt.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in key.read_bytes()
    assert cert_names(crt) == ["example.com", "conference.example.com"]
    assert cert_names(crt2) == ["example.org", "*.example.org"]
    cert = x509.load_der_x509_certificate(load_cert_der(crt))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    xmpp_addrs = [o.value for o in san.get_values_for_type(x509.OtherName)]
    assert b"\x0c\x0bexample.com" in xmpp_addrs          # id-on-xmppAddr, UTF8String
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_load_cert_der_takes_first_of_chain(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("example.com")
    chain = tmp_path / "fullchain.pem"
    leaf.cert_chain_pems[0].write_to_path(str(chain))
    ca.cert_pem.write_to_path(str(chain), append=True)
    der = load_cert_der(chain)
    assert der == ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    # DER input works too
    (tmp_path / "c.der").write_bytes(der)
    assert load_cert_der(tmp_path / "c.der") == der


def test_find_certificate(tmp_path):
    d = tmp_path / "certificates"
    assert find_certificate("example.com", d) is None
    generate_self_signed("example.com", d / "example.com" / "fullchain.pem",
                         d / "example.com" / "privkey.pem")
    assert find_certificate("example.com", d) == (
        d / "example.com" / "fullchain.pem", d / "example.com" / "privkey.pem")
    generate_self_signed("example.com", d / "example.com.crt", d / "example.com.key")
    assert find_certificate("Example.COM.", d) == (d / "example.com.crt", d / "example.com.key")
    # a component falls back to its parent domain, as in Prosody
    assert find_certificate("conference.example.com", d) == (
        d / "example.com.crt", d / "example.com.key")
    assert find_certificate("conference.example.com", d, parents=False) is None
    # combined file
    (d / "example.net.pem").write_bytes(
        (d / "example.com.crt").read_bytes() + (d / "example.com.key").read_bytes())
    assert find_certificate("example.net", d) == (d / "example.net.pem", d / "example.net.pem")
    # a certificate without its key is not a match
    (d / "example.org.crt").write_bytes((d / "example.com.crt").read_bytes())
    assert find_certificate("example.org", d) is None


def test_name_matches():
    assert name_matches("example.com", "EXAMPLE.com.")
    assert name_matches("*.example.com", "muc.example.com")
    assert not name_matches("*.example.com", "example.com")
    assert not name_matches("*.example.com", "a.b.example.com")


# --- channel binding --------------------------------------------------------------------

def test_end_point_hash_rules():
    ca = trustme.CA()
    der = load_cert_der_from_pem(ca.issue_cert("example.com").cert_chain_pems[0].bytes())
    # trustme signs with SHA-256: the hash is SHA-256 of the DER
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


# ecdsa-with-SHA1, made once with `openssl req -x509 -sha1` (cryptography no longer
# signs with SHA-1), valid until 2126.
SHA1_SIGNED_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBhDCCASqgAwIBAgIUNSSfoKDgGr8aBjyKNjRjoCFweEcwCQYHKoZIzj0EATAX
MRUwEwYDVQQDDAxzaGExLmV4YW1wbGUwIBcNMjYxMTI3MDQ1MDI1WhgPMjEyNjEx
MDMwNDUwMjVaMBcxFTATBgNVBAMMDHNoYTEuZXhhbXBsZTBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABJpdW1PDdLrKmmpUnpk6EOnuac8albO63uC55u8tsaMUSyQn
PHVWLmFQ1k6+mk+vDZrLeGJAsCumRTqzNjuSfpqjUzBRMB0GA1UdDgQWBBSt+DDr
Epvh6S75cmBMYY6up3KIrzAfBgNVHSMEGDAWgBSt+DDrEpvh6S75cmBMYY6up3KI
rzAPBgNVHRMBAf8EBTADAQH/MAkGByqGSM49BAEDSQAwRgIhAP3+umKcAmRvLdX3
Fy5zlz2ZBnoanLGoQhXhcHvnscfOAiEAmHTJFIzhtKm3dXeh90Ut1NbE2xAw4Va4
y7kel/jyWfc=
-----END CERTIFICATE-----
"""


def test_end_point_hash_follows_signature_hash():
    """RFC 5929 §4.1: the signature's hash; MD5/SHA-1 are replaced by SHA-256."""
    import datetime
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    for algo, expect in ((hashes.SHA384(), hashlib.sha384), (hashes.SHA512(), hashlib.sha512)):
        der = builder.sign(key, algo).public_bytes(Encoding.DER)
        assert tls_server_end_point(der) == expect(der).digest()
    der = ssl.PEM_cert_to_DER_cert(SHA1_SIGNED_PEM)
    assert isinstance(x509.load_der_x509_certificate(der).signature_hash_algorithm, hashes.SHA1)
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_end_point_hash_undefined_for_ed25519():
    import datetime
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ed.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(1).not_valid_before(now)
           .not_valid_after(now + datetime.timedelta(days=1)).sign(key, None)
           .public_bytes(Encoding.DER))
    with pytest.raises(ValueError):
        tls_server_end_point(der)


def load_cert_der_from_pem(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


# --- handshakes -------------------------------------------------------------------------

async def test_handshake_self_signed_with_alpn(two_hosts):
    (crt, key), _ = two_hosts
    server_ctx = make_server_context(crt, key, alpn=["xmpp-client"])
    assert server_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert server_ctx.options & ssl.OP_NO_COMPRESSION
    client_ctx = ssl.create_default_context(cafile=str(crt))
    client_ctx.set_alpn_protocols(["xmpp-client"])
    client, server = await handshake(server_ctx, client_ctx, "example.com")
    assert client.selected_alpn_protocol() == "xmpp-client"
    assert server.selected_alpn_protocol() == "xmpp-client"
    peer = client.getpeercert(binary_form=True)
    assert peer == load_cert_der(crt)
    assert tls_server_end_point(peer) == hashlib.sha256(peer).digest()


async def test_sni_selects_host_certificate(two_hosts):
    (crt, key), (crt2, key2) = two_hosts
    store = CertificateStore()
    store.add([], crt, key)                    # names from the certificate
    store.add(["example.org", "*.example.org"], crt2, key2)
    assert store.names() == ["example.com", "conference.example.com",
                             "example.org", "*.example.org"]
    listener = store.default_context(alpn=["xmpp-client"])

    for sni, cert_file in (("example.com", crt), ("conference.example.com", crt),
                           ("example.org", crt2), ("upload.example.org", crt2),
                           ("unknown.test", crt)):
        client_ctx = ssl.create_default_context(cafile=str(cert_file))
        client_ctx.set_alpn_protocols(["xmpp-client"])
        if sni == "unknown.test":               # default certificate, wrong name
            client_ctx.check_hostname = False
        client, server = await handshake(listener, client_ctx, sni)
        peer = client.getpeercert(binary_form=True)
        assert peer == load_cert_der(cert_file), sni
        assert client.selected_alpn_protocol() == "xmpp-client", sni
        # the binding data the server will use equals what the client computes
        expected = tls_server_end_point(peer)
        assert store.end_point_hash(sni) == expected, sni
        assert store.end_point_hash_for(server) == expected, sni


async def test_no_sni_gets_default(two_hosts):
    (crt, key), (crt2, key2) = two_hosts
    store = CertificateStore()
    store.add(["example.com"], crt, key)
    store.add(["example.org"], crt2, key2)
    client_ctx = ssl.create_default_context(cafile=str(crt))
    client_ctx.check_hostname = False
    client, server = await handshake(store.default_context(), client_ctx, None)
    assert client.getpeercert(binary_form=True) == load_cert_der(crt)
    assert store.end_point_hash_for(server) == tls_server_end_point(load_cert_der(crt))


def test_store_lookup_and_errors(two_hosts, tmp_path):
    (crt, key), (crt2, key2) = two_hosts
    store = CertificateStore()
    assert not store
    with pytest.raises(LookupError):
        store.context_for("example.com")
    store.add([], crt, key)
    store.add([], crt2, key2)
    assert store.context_for("EXAMPLE.ORG") is store.context_for("example.org")
    assert store.context_for("x.example.org") is store.context_for("example.org")
    assert store.context_for(None) is store.context_for("example.com")
    assert store.has_name("a.example.org") and not store.has_name("a.b.example.org")
    assert store.cert_der_for("example.org") == load_cert_der(crt2)
    with pytest.raises(ssl.SSLError):          # key does not match the certificate
        store.add(["bad.example"], crt, key2)
    with pytest.raises(OSError):
        store.add(["missing.example"], tmp_path / "nope.crt", tmp_path / "nope.key")


async def test_trustme_ca_signed_chain(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("example.com", "conference.example.com")
    crt, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    leaf.private_key_pem.write_to_path(str(key))
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(crt), append=True)
    store = CertificateStore()
    store.add([], crt, key)
    assert set(store.names()) == {"example.com", "conference.example.com"}
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client, server = await handshake(store.default_context(), client_ctx,
                                     "conference.example.com")
    peer = client.getpeercert(binary_form=True)
    assert store.end_point_hash_for(server) == tls_server_end_point(peer)


async def test_scram_plus_over_real_tls(two_hosts):
    """End to end: the client binds to the certificate it saw; the server to the one it
    served; SCRAM-SHA-256-PLUS succeeds only because they agree."""
    (crt, key), (crt2, key2) = two_hosts
    store = CertificateStore()
    store.add([], crt, key)
    store.add([], crt2, key2)
    client_ctx = ssl.create_default_context(cafile=str(crt2))
    client, server = await handshake(store.default_context(), client_ctx, "example.org")
    creds = {"juliet": make_credentials("pw", 4096)}

    async def get(u):
        return creds.get(u)
    cb = store.end_point_hash_for(server)
    offered = offered_mechanisms(tls=True, channel_binding_available=cb is not None)
    srv = SASLServer("SCRAM-SHA-256-PLUS", offered=offered, host="example.org",
                     get_credentials=get, channel_binding=("tls-server-end-point", cb))
    # scramp's client takes the binding straight from the TLS connection
    sc = ScramClient(["SCRAM-SHA-256-PLUS"], "juliet", "pw",
                     channel_binding=("tls-server-end-point", client))
    step = await srv.step(sc.get_client_first().encode())
    sc.set_server_first(step.data.decode())
    step = await srv.step(sc.get_client_final().encode())
    sc.set_server_final(step.data.decode())
    assert step.kind == "success" and step.username == "juliet"
