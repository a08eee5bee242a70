"""Live reload: the configuration files changed, then ``xmppctl reload`` (or SIGHUP)
applies them to the running xmppd — hosts added and removed, modules loaded and
unloaded, module options changed — while a session the change does not concern
stays connected throughout. What needs a restart is said, and a configuration
with an error is not applied at all. xmppd is a real subprocess, xmppctl runs
in-process (the real program for adduser); the clients are slixmpp."""
from __future__ import annotations

import asyncio
import signal

from slixmpp.exceptions import IqError

from tests.e2e.clients import TIMEOUT, slix_close, slix_connect

from .conftest import DOMAIN, write_tree
from .test_control import adduser, ctl_in, wait_for

OTHER = f"other.{DOMAIN}"       # covered by the test certificate's *.xmppd.test


async def still_there(c) -> None:
    """The session answers: a ping to the server over the same stream."""
    await c.plugin["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)


async def version_of(c, host: str):
    return await c.plugin["xep_0092"].get_version(host, timeout=TIMEOUT)


async def test_hosts_modules_and_options_applied_live(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra='modules_enabled = { "disco", "ping", "version" }\n')
    ctl = ctl_in(cfg)
    alice = await adduser(ctl, "alice")
    d = start_daemon(cfg).wait_ready()
    a = await slix_connect(d, alice, "pw", plugins=["xep_0092", "xep_0199"])
    try:
        v = await version_of(a, DOMAIN)
        assert v["software_version"]["os"]

        # a new VirtualHost, enabled the handbook's way
        (tmp_path / "conf.avail" / f"{OTHER}.cfg.lua").write_text(
            f'VirtualHost "{OTHER}"\n    ssl = {{ certificate = "{cert_files["crt"]}"; '
            f'key = "{cert_files["key"]}"; }}\n')
        r = await ctl("enable", OTHER)
        assert r.returncode == 0 and "xmppctl reload" in r.stdout, r.stdout
        r = await ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"applied: VirtualHost '{OTHER}' added, modules: " in r.stdout, r.stdout
        bob = f"bob@{OTHER}"
        assert (await ctl("adduser", bob, "--password-stdin", input="pw\n")).returncode == 0
        b = await slix_connect(d, bob, "pw")
        await still_there(a)
        a.send_message(mto=bob, mbody="welcome", mtype="chat")
        assert (await b.next_message())["body"] == "welcome"

        # a module out, then in again with a changed option of its own
        text = cfg.read_text()
        cfg.write_text(text.replace('"disco", "ping", "version"', '"disco", "ping"'))
        r = await ctl("reload")
        assert f"applied: {DOMAIN}: module version unloaded" in r.stdout, r.stdout
        try:
            await version_of(a, DOMAIN)
            raise AssertionError("version still answers")
        except IqError as exc:
            assert exc.iq["error"]["condition"] == "service-unavailable"
        cfg.write_text(text + "hide_os_type = true\n")
        r = await ctl("reload")
        assert f"applied: {DOMAIN}: module version loaded" in r.stdout, r.stdout
        v = await version_of(a, DOMAIN)
        assert v["software_version"]["name"] == "xmppd" and not v["software_version"]["os"]
        cfg.write_text(text + "hide_os_type = false\n")
        r = await ctl("reload")
        assert f"applied: {DOMAIN}: module version reloaded for option hide_os_type" in r.stdout
        assert (await version_of(a, DOMAIN))["software_version"]["os"]

        # what needs a restart is said, not done
        cfg.write_text(cfg.read_text().replace("c2s_ports = {", "c2s_ports = { 1,"))
        r = await ctl("reload")
        assert "needs a restart: option c2s_ports changed" in r.stdout, r.stdout
        cfg.write_text(cfg.read_text().replace("c2s_ports = { 1,", "c2s_ports = {"))

        # an error: nothing applied, the server goes on as it was
        cfg.write_text(cfg.read_text() + 'c2s_timeout = "soon"\n')
        r = await ctl("reload")
        assert r.returncode == 1
        assert "configuration NOT applied, xmppd keeps running with the previous one: " in r.stdout
        assert f"{cfg}:" in r.stdout
        cfg.write_text(cfg.read_text().replace('c2s_timeout = "soon"\n', ""))

        # the host disabled: its sessions end with host-gone, alice's goes on
        gone = asyncio.get_running_loop().create_future()
        b.add_event_handler("stream_error", lambda e: gone.done() or gone.set_result(e))
        assert (await ctl("disable", OTHER)).returncode == 0
        d.proc.send_signal(signal.SIGHUP)          # SIGHUP does what reload does
        err = await asyncio.wait_for(gone, TIMEOUT)
        assert err["condition"] == "host-gone"
        await wait_for(lambda: f"reload: VirtualHost '{OTHER}' removed" in d.output())
        await still_there(a)
        await slix_close(b)
        r = await ctl("status")
        assert OTHER not in r.stdout
    finally:
        await slix_close(a)
    assert "Traceback" not in d.output()
