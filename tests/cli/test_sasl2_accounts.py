"""SASL2 on the real daemon with accounts changed from outside: an account imported
from the real Prosody (SCRAM-SHA-1 keys only) gets its SCRAM-SHA-256 keys by the
upgrade task (XEP-0480), and a FAST token (XEP-0484) ends when ``xmppctl passwd``
changes the password, without the running server being told."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scramp.utils import saslprep

from tests.e2e.sasl2client import (
    FAST, SASL, SASL2, SCRAM_UPGRADE, UPGRADE, authenticate_xml, authentication, b64, end_point,
    ht_initial, new_ua, q, read_element, scram2, tls_stream,
)

from .conftest import DOMAIN, run_ctl, write_tree
from .test_import_prosody import prosody  # noqa: F401  (the fixture)


async def ctl(*args: str, input: str | None = None):
    return await asyncio.to_thread(run_ctl, *args, input=input)


def sasl2_mechanisms(feats: str) -> list[str]:
    return [m.text for m in authentication(feats).findall(q(SASL2, "mechanism"))]


@pytest.mark.external("prosody")
async def test_prosody_account_upgraded_to_scram_sha_256(tmp_path, cert_files, prosody, start_daemon):  # noqa: F811
    prosody.register("carol", "c-old")
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))
    r = await ctl("--config", cfg, "import", "prosody", str(prosody.base / "data"))
    assert r.returncode == 0, r.stdout + r.stderr
    d = start_daemon(Path(cfg)).wait_ready()

    raw, feats = await tls_stream(d)
    assert "SCRAM-SHA-256" not in sasl2_mechanisms(feats)
    try:
        cb = ("tls-server-end-point", end_point(raw))
        el, _ = await scram2(raw, "SCRAM-SHA-1-PLUS", "carol", "c-old", cb=cb, ua_id=new_ua(),
                             extra=f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-256</upgrade>")
        assert el.tag == q(SASL2, "continue"), ET.tostring(el)
        raw.send(f"<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-256'/>")
        salt_el = (await read_element(raw)).find(q(SCRAM_UPGRADE, "salt"))
        salted = hashlib.pbkdf2_hmac("sha256", saslprep("c-old").encode(), base64.b64decode(salt_el.text),
                                     int(salt_el.get("iterations")))
        raw.send(f"<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{b64(salted)}</hash></task-data>")
        el = await read_element(raw)
        assert el.findtext(q(SASL2, "authorization-identifier")) == f"carol@{DOMAIN}"
    finally:
        raw.close()
    # carol was the host's only SHA-1-only account: SCRAM-SHA-256 is offered again, and works
    raw, feats = await tls_stream(d)
    try:
        assert sasl2_mechanisms(feats)[:3] == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"]
        el, _ = await scram2(raw, "SCRAM-SHA-256", "carol", "c-old")
        assert el.tag == q(SASL2, "success")
    finally:
        raw.close()
    assert "carol@xmppd.test has scram-sha-256 keys now" in d.output()


async def test_fast_token_ends_with_xmppctl_passwd(tmp_path, cert_files, start_daemon):
    cfg = str(write_tree(tmp_path, cert_files,
                         extra='modules_enabled = { "disco", "ping", "roster", "fast" }\n'))
    r = await ctl("--config", cfg, "adduser", f"dana@{DOMAIN}", "--password-stdin", input="d-pw\n")
    assert r.returncode == 0, r.stderr
    d = start_daemon(Path(cfg)).wait_ready()
    ua = new_ua()
    raw, _ = await tls_stream(d)
    el, _ = await scram2(raw, "SCRAM-SHA-256", "dana", "d-pw", ua_id=ua,
                         extra=f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>")
    raw.close()
    token = el.find(q(FAST, "token")).get("token")

    async def with_token() -> ET.Element:
        raw, _ = await tls_stream(d)
        try:
            raw.send(authenticate_xml("HT-SHA-256-NONE", ht_initial("dana", token), ua_id=ua,
                                      extra=f"<fast xmlns='{FAST}'/>"))
            return await read_element(raw)
        finally:
            raw.close()

    assert (await with_token()).tag == q(SASL2, "success")
    r = await ctl("--config", cfg, "passwd", f"dana@{DOMAIN}", "--password-stdin", input="d-new\n")
    assert r.returncode == 0, r.stderr
    el = await with_token()
    assert el.find(q(SASL, "credentials-expired")) is not None, ET.tostring(el)
