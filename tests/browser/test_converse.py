"""Converse.js, the real web client (npm ``converse.js``), in headless Chromium
(Debian ``chromium`` and ``chromium-driver``, driven by selenium) against the real
server: it logs in over WebSocket and over BOSH, chats with a slixmpp client over TCP, joins a
MUC room, and sends a file through HTTP File Upload that the slixmpp side
downloads byte for byte. A screenshot of the chat is kept in
``var/test-artifacts/``.

``make browser-deps`` installs Converse.js into ``var/npm`` (``make test`` does it);
the browser comes from Debian (``make system-deps``, ``.ci/run``).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import textwrap
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from slixmpp.exceptions import PresenceError

from tests.e2e.clients import slix_close, slix_connect
from xmppd.config.options import DEFAULT_MODULES
from tests.e2e.conftest import DOMAIN, HTTP, start_server
from tests.e2e.test_http_file_share import Loopback
from tests.e2e.wsclient import client_ssl

REPO = Path(__file__).resolve().parents[2]
CONVERSE = REPO / "var" / "npm" / "node_modules" / "converse.js" / "dist"
ARTIFACTS = REPO / "var" / "test-artifacts"
MUC = f"conference.{DOMAIN}"
UPLOAD = f"upload.{DOMAIN}"
ROOM = f"lobby@{MUC}"

pytestmark = [pytest.mark.external("chromium"), pytest.mark.timeout(180)]


def _browser_or_skip():
    chrome = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    if not (CONVERSE / "converse.min.js").exists():
        pytest.skip("Converse.js is not installed (make browser-deps)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    return chrome, driver


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>xmppd test</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script></head>
<body class="converse-fullscreen">
<script type="module">
converse.plugins.add('xmppd-test', {
  initialize() { window.xapi = this._converse.api; window.xconv = this._converse; }
});
converse.initialize(%(settings)s);
</script></body></html>
"""


@pytest.fixture(params=["websocket", "bosh"])
async def stack(tmp_path, certs, request):
    """xmppd with WebSocket, a MUC and file upload; a page server for Converse.js."""
    _browser_or_skip()
    app = web.Application()
    state: dict = {}

    async def page(_request):
        return web.Response(text=state["page"], content_type="text/html")
    app.router.add_get("/", page)
    app.router.add_static("/dist/", CONVERSE)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    page_port = site._server.sockets[0].getsockname()[1]
    origin = f"http://127.0.0.1:{page_port}"
    srv = await start_server(tmp_path, certs, extra=HTTP + textwrap.dedent(f"""
        cross_domain_websocket = {{ "{origin}" }}
        cross_domain_bosh = {{ "{origin}" }}
        Component "{MUC}" "muc"
        Component "{UPLOAD}" "http_file_share"
    """), host_extra="modules_enabled = { %s }\n" % ", ".join(
        f'"{m}"' for m in DEFAULT_MODULES + ("websocket", "bosh")))   # as deployed
    https = srv.server.ports("https")[0]
    transport = request.param
    endpoint = ({"websocket_url": f"wss://{DOMAIN}:{https}/xmpp-websocket"} if transport == "websocket"
                else {"bosh_service_url": f"https://{DOMAIN}:{https}/http-bind"})
    settings = {
        **endpoint,
        "jid": f"alice@{DOMAIN}", "password": "secret", "auto_login": True,
        "discover_connection_methods": False, "view_mode": "fullscreen",
        "whitelisted_plugins": ["xmppd-test"], "omemo_default": False,
        "persistent_store": "sessionStorage", "loglevel": "debug",
        "muc_nickname_from_jid": True, "auto_register_muc_nickname": False,
        "play_sounds": False, "show_desktop_notifications": False,
        "allow_non_roster_messaging": True,     # bob is not in alice's roster
    }
    state["page"] = PAGE % {"settings": json.dumps(settings)}
    srv.page = origin + "/"
    srv.https = https
    srv.transport = transport
    await srv.adduser(f"alice@{DOMAIN}")
    await srv.adduser(f"bob@{DOMAIN}")
    try:
        yield srv
    finally:
        await srv.server.stop()
        await runner.cleanup()


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chrome, driver = _browser_or_skip()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--ignore-certificate-errors",
                f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1, MAP {UPLOAD} 127.0.0.1, "
                f"MAP {MUC} 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


async def js(drv, script: str, timeout: float = 30):
    """Run ``script`` (an async function body; ``return`` gives the result) in the page."""
    wrapped = ("const done = arguments[arguments.length - 1];"
               f"(async () => {{ {script} }})().then(r => done({{ok: r}}), "
               "e => done({err: String(e && e.stack || e)}));")

    def run():
        drv.set_script_timeout(timeout)
        return drv.execute_async_script(wrapped)
    out = await asyncio.to_thread(run)
    if "err" in out:
        raise AssertionError(f"in the page: {out['err']}")
    return out.get("ok")


async def until(drv, condition: str, timeout: float = 30):
    """Wait until the JS expression ``condition`` is true in the page."""
    return await js(drv, f"""
        const t0 = Date.now();
        while (Date.now() - t0 < {timeout * 1000}) {{
            try {{ const v = await ({condition}); if (v) return typeof v === "object" ? true : v; }} catch (e) {{}}
            await new Promise(r => setTimeout(r, 100));
        }}
        throw new Error('timed out waiting for: ' + {json.dumps(condition)});
    """, timeout + 5)


async def test_converse(stack):
    srv = stack
    drv = await asyncio.to_thread(_driver)
    bob = await slix_connect(srv, f"bob@{DOMAIN}")
    try:
        await asyncio.to_thread(drv.get, srv.page)
        await until(drv, "window.xapi && xapi.connection.connected() && xapi.connection.get().jid")
        # the session is a WebSocket (or BOSH) one on the server, bound to a resource
        kind = {"websocket": "WebSocketSession", "bosh": "BoshSession"}[srv.transport]
        for _ in range(100):
            ours = [s for s in srv.server.c2s_sessions if type(s).__name__ == kind and s.full_jid]
            if ours:
                break
            await asyncio.sleep(0.1)
        jid = await js(drv, "return xapi.connection.get().jid;")
        assert [s.full_jid for s in ours] == [jid] and jid.startswith(f"alice@{DOMAIN}/")

        # one-to-one, both ways
        await js(drv, f"await xapi.chats.get('bob@{DOMAIN}', {{}}, true); return true;")
        bob.send_message(mto=f"alice@{DOMAIN}", mbody="hello from slixmpp", mtype="chat")
        await until(drv, f"""(await xapi.chats.get('bob@{DOMAIN}')).messages
                             .findWhere({{body: 'hello from slixmpp'}})""")
        await js(drv, f"""const c = await xapi.chats.get('bob@{DOMAIN}');
                          await c.sendMessage({{body: 'hello from converse'}}); return true;""")
        got = await asyncio.wait_for(bob.messages.get(), 20)
        assert got["body"] == "hello from converse" and str(got["from"]).startswith(f"alice@{DOMAIN}/")

        # a MUC room, with bob in it over TCP
        await js(drv, f"await xapi.rooms.get('{ROOM}', {{nick: 'alice'}}, true); return true;")
        await until(drv, f"(await xapi.rooms.get('{ROOM}')).session.get('connection_status') == 5")
        bob.register_plugin("xep_0045")
        for attempt in range(40):   # until Converse has configured the room it created
            try:
                await bob.plugin["xep_0045"].join_muc_wait(ROOM, "bob", maxstanzas=0, timeout=20)
                break
            except PresenceError as e:
                if "locked" not in str(e) or attempt == 39:
                    raise
                await asyncio.sleep(0.25)
        bob.send_message(mto=ROOM, mbody="hello room", mtype="groupchat")
        await until(drv, f"(await xapi.rooms.get('{ROOM}')).messages.findWhere({{body: 'hello room'}})")

        # a file: Converse asks upload.xmppd.test for a slot, PUTs it, sends the link
        payload = bytes(range(256)) * 40
        await js(drv, f"""const c = await xapi.chats.get('bob@{DOMAIN}');
            const bytes = new Uint8Array({list(payload)});
            await c.sendFiles([new File([bytes], 'notes.bin', {{type: 'application/octet-stream'}})]);
            return true;""", timeout=60)
        url = None
        for _ in range(10):
            m = await asyncio.wait_for(bob.messages.get(), 30)
            if m["body"].startswith("https://"):
                url = m["body"]
                break
        assert url and url.startswith(f"https://{UPLOAD}:{srv.https}/file_share/"), url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=client_ssl(srv.cafile), resolver=Loopback())) as http:
            async with http.get(url) as r:
                assert r.status == 200
                assert hashlib.sha256(await r.read()).digest() == hashlib.sha256(payload).digest()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await js(drv, f"await xapi.chats.open('bob@{DOMAIN}'); return true;", timeout=10)
        await asyncio.to_thread(drv.save_screenshot, str(ARTIFACTS / f"converse-{srv.transport}.png"))
    finally:
        try:
            logs = await asyncio.to_thread(drv.get_log, "browser")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / f"converse-{srv.transport}.log").write_text(
                "\n".join(str(e.get("message")) for e in logs))
        except Exception:
            pass
        await asyncio.to_thread(drv.quit)
        await slix_close(bob)
