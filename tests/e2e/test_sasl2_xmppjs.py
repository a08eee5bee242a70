"""xmpp.js (npm ``@xmpp/client``), a client library that speaks SASL2 (XEP-0388),
Bind 2 (XEP-0386) and FAST (XEP-0484), in Node: it logs in with its password and
asks for a token, then logs in again with the token (HT-SHA-256-NONE), and
exchanges a message with a raw client each time.

``make node-deps`` installs xmpp.js into ``var/npm-xmppjs`` (``make test`` does it).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import start_server
from .sasl2client import BIND2, SASL2, new_ua, q, read_element, scram2, tls_stream

REPO = Path(__file__).resolve().parents[2]
XMPPJS = REPO / "var" / "npm-xmppjs"
SCRIPT = Path(__file__).parent / "js" / "xmppjs_fast.mjs"

pytestmark = [pytest.mark.external("node"), pytest.mark.timeout(120)]


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    if not (XMPPJS / "node_modules" / "@xmpp" / "client" / "package.json").exists():
        pytest.skip("xmpp.js is not installed (make node-deps)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if tuple(int(x) for x in version.lstrip("v").split(".")[:2]) < (20, 10):
        pytest.skip(f"xmpp.js needs Node 20.10 or later; this is {version}")
    return node


async def test_xmppjs_sasl2_bind2_fast(tmp_path, certs):
    node = _node_or_skip()
    srv = await start_server(tmp_path, certs, extra='modules_enabled = { "disco", "ping", "roster", '
                             '"smacks", "carbons", "csi", "fast" }\n')
    bob = None
    proc = None
    try:
        await srv.adduser("alice@xmppd.test", "pencil")
        await srv.adduser("bob@xmppd.test", "secret")
        bob, _ = await tls_stream(srv)
        el, _ = await scram2(bob, "SCRAM-SHA-256", "bob", "secret", ua_id=new_ua(),
                             extra=f"<bind xmlns='{BIND2}'><tag>py</tag></bind>")
        assert el.tag == q(SASL2, "success")
        bob_jid = el.findtext(q(SASL2, "authorization-identifier"))
        await bob.read_until(b"</stream:features>")

        env = {**os.environ, "NODE_EXTRA_CA_CERTS": srv.cafile, "XMPPJS_DEBUG": "1"}   # statuses too
        proc = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), str(XMPPJS), str(srv.port), "pencil", bob_jid,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        # bob answers each message xmpp.js sends
        for round_ in (1, 2):
            got = await bob.read_until(b"</message>", timeout=60)
            assert f"hello {round_} from xmpp.js" in got, got
            frm = re.search(r"from=['\"]([^'\"]+)['\"]", got).group(1)
            bob.send(f"<message to='{frm}' type='chat'><body>hi {round_} from python</body></message>")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        assert proc.returncode == 0, (out.decode(), err.decode())
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if bob is not None:
            bob.close()
        await srv.server.stop()

    auths = [e for e in events if e.get("event") == "authenticate"]
    # round 1: a password mechanism, a token asked for; round 2: the token
    assert auths[0]["mechanism"].startswith("SCRAM-") and auths[0]["requestToken"] and auths[0]["bind2"]
    assert auths[1]["mechanism"] == "HT-SHA-256-NONE" and auths[1]["bind2"]
    assert [e["mechanism"] for e in events if e.get("event") == "token"] == ["HT-SHA-256-NONE"]
    online = [e["jid"] for e in events if e.get("event") == "online"]
    # Bind 2: the resource is the tag and a part stable for this user agent
    assert len(online) == 2 and online[0] == online[1] and online[0].startswith("alice@xmppd.test/nodejs.")
    assert [e["body"] for e in events if e.get("event") == "message"] == ["hi 1 from python", "hi 2 from python"]
    # no error while a session ran. xmpp.js sometimes reports a TimeoutError 2 s after
    # a session went offline (its default timeout; apparently a wait on its socket
    # for an event that came already, as the server closes the connection right after
    # its </stream:stream>, RFC 6120 §4.4): not counted
    ended = max(i for i, e in enumerate(events) if e.get("status") == "offline")
    errors = [e for e in events[:ended] if e.get("event") == "error"]
    assert not errors, "\n".join(map(str, events))
