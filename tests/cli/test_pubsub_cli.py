"""``xmppctl pubsub list|delete`` on a pubsub component: through the running
xmppd's control socket (subscribers of a deleted node are told), and on the
stores when it is stopped. xmppd is a real subprocess, xmppctl runs in-process
(the real program for adduser, which reads standard input), the client is slixmpp."""
from __future__ import annotations

import asyncio
import json
import signal
import xml.etree.ElementTree as ET

from tests.e2e.clients import TIMEOUT, slix_close, slix_connect

from .conftest import DOMAIN, ctl_async, write_tree

PS = f"pubsub.{DOMAIN}"
EVENT = "http://jabber.org/protocol/pubsub#event"
PLUGINS = ("xep_0004", "xep_0030", "xep_0060")


def ctl_in(cfg):
    async def run(*args: str, input: str | None = None):
        return await ctl_async("--config", str(cfg), *args, input=input)
    return run


async def adduser(ctl, name: str) -> str:
    jid = f"{name}@{DOMAIN}"
    r = await ctl("adduser", jid, "--password-stdin", input="pw\n")
    assert r.returncode == 0, r.stderr
    return jid


async def test_pubsub_list_and_delete_live_then_stored(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra=f'Component "{PS}" "pubsub"\n')
    ctl = ctl_in(cfg)
    admin, alice = await adduser(ctl, "admin"), await adduser(ctl, "alice")
    d = start_daemon(cfg).wait_ready()
    a = await slix_connect(d, admin, "pw", plugins=PLUGINS)
    b = await slix_connect(d, alice, "pw", plugins=PLUGINS)
    try:
        r = await ctl("pubsub", "list")
        assert (r.returncode, r.stdout) == (0, f"no nodes on {PS}\n"), r.stderr
        ps = a.plugin["xep_0060"]
        form = a.plugin["xep_0004"].make_form("submit")
        form.add_field(var="pubsub#title", value="Falcot news")
        await ps.create_node(PS, "news", config=form, timeout=TIMEOUT)
        await ps.create_node(PS, "old", timeout=TIMEOUT)
        await ps.publish(PS, "news", id="1", payload=ET.fromstring("<x xmlns='urn:t'/>"),
                         timeout=TIMEOUT)
        deleted: asyncio.Queue = asyncio.Queue()
        b.add_event_handler("pubsub_delete", deleted.put_nowait)
        await b.plugin["xep_0060"].subscribe(PS, "old", timeout=TIMEOUT)
        r = await ctl("pubsub", "list", "--host", PS)
        assert r.returncode == 0, r.stderr
        news, old = (line.split("\t") for line in r.stdout.splitlines())
        assert news == ["news", "open", "1 item(s)", "0 subscriber(s)", f"owners={admin}",
                        "Falcot news"]
        assert old == ["old", "open", "0 item(s)", "1 subscriber(s)", f"owners={admin}"]
        r = await ctl("pubsub", "list", "--json")
        nodes = {n["node"]: n for n in json.loads(r.stdout)}
        assert nodes["news"]["items"] == 1 and nodes["old"]["subscribers"] == 1
        # delete through the running xmppd: the subscriber is told
        r = await ctl("pubsub", "delete", "old")
        assert (r.returncode, r.stdout.strip()) == (0, f"deleted node old of {PS}"), r.stderr
        msg = await asyncio.wait_for(deleted.get(), TIMEOUT)
        assert msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}delete").get("node") == "old"
        r = await ctl("pubsub", "delete", "old")
        assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no node 'old' on {PS}")
    finally:
        await slix_close(a, b)
    d.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait) == 0
    # stopped: the stores
    r = await ctl("pubsub", "list")
    assert r.returncode == 0, r.stderr
    news, note = r.stdout.splitlines()
    assert news.split("\t")[:3] == ["news", "open", "1 item(s)"]
    assert note == "(xmppd is not running: the nodes in the storage)"
    r = await ctl("pubsub", "delete", "news", "--host", PS)
    assert r.returncode == 0, r.stderr
    assert "(xmppd is not running: deleted from the storage)" in r.stdout
    r = await ctl("pubsub", "list")
    assert r.stdout.splitlines()[0] == f"no nodes on {PS}"
    r = await ctl("pubsub", "delete", "news")
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no node 'news' on {PS}")


async def test_pubsub_commands_name_the_component(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files)
    ctl = ctl_in(cfg)
    r = await ctl("pubsub", "list")
    assert r.returncode == 1 and "no pubsub component in" in r.stderr
    cfg = write_tree(tmp_path, cert_files, extra=f'Component "{PS}" "pubsub"\n'
                     f'Component "feeds.{DOMAIN}" "pubsub"\nComponent "conference.{DOMAIN}" "muc"\n')
    r = await ctl("pubsub", "list")
    assert r.returncode == 1 and "several pubsub components" in r.stderr and "--host" in r.stderr
    r = await ctl("pubsub", "delete", "x", "--host", f"conference.{DOMAIN}")
    assert r.returncode == 1
    assert f"'conference.{DOMAIN}' is not a pubsub component" in r.stderr
    r = await ctl("pubsub", "list", "--host", f"feeds.{DOMAIN}")
    assert (r.returncode, r.stdout.splitlines()[0]) == (0, f"no nodes on feeds.{DOMAIN}"), r.stderr
