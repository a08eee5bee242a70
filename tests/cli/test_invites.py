"""``xmppctl invite create|contact|list|revoke``: with xmppd stopped (the storage)
and running (the control socket), a real client registering with the token, and
bad input answered with a message and a non-zero exit."""
from __future__ import annotations

import asyncio
import re

from tests.e2e.test_invites import try_register

from .conftest import DOMAIN, ctl_async, run_ctl, write_tree

MODULES = ('modules_enabled = { "roster", "disco", "register", "adhoc", "invites", '
           '"invites_register", "invites_adhoc" }\n')
TOKEN = re.compile(r"preauth=([\w-]+)")


def ctl_in(cfg):
    async def run(*args: str, input: str | None = None):
        return await ctl_async("--config", str(cfg), *args, input=input)
    return run


def token_of(out: str) -> str:
    return TOKEN.search(out).group(1)


async def test_invites_with_xmppd_stopped_then_redeemed(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra=MODULES)
    ctl = ctl_in(cfg)
    r = await ctl("invite", "create", DOMAIN, "--expires", "2d")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"xmpp:{DOMAIN}\?register;preauth=[\w-]+", lines[0])
    assert f"register on {DOMAIN}; single-use; expires " in lines[1]
    assert "xmppd is not running" in r.stdout
    first = token_of(r.stdout)
    r = await ctl("invite", "create", f"juliet@{DOMAIN}", "--admin", "--group", "staff", "--reusable")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"xmpp:juliet@{DOMAIN}?register;preauth=")
    assert "as juliet, as an administrator, groups staff; reusable until it expires" in r.stdout
    second = token_of(r.stdout)

    r = await ctl("invite", "list", DOMAIN)
    assert r.returncode == 0, r.stderr
    assert first in r.stdout and second in r.stdout
    assert f"2 pending invitation(s) on {DOMAIN}" in r.stdout
    r = await ctl("invite", "revoke", DOMAIN, second)
    assert (r.returncode, r.stdout.strip()) == (0, f"invitation {second} revoked")
    r = await ctl("invite", "list", DOMAIN, "--json")
    assert [i["token"] for i in __import__("json").loads(r.stdout)] == [first]

    # the daemon finds what was stored while it was stopped: a real client registers
    d = start_daemon(cfg).wait_ready()
    assert await try_register(d, f"newbie@{DOMAIN}", first) == ["token accepted", "registered", "logged in"]
    assert await try_register(d, f"second@{DOMAIN}", second) == ["item-not-found", "not-acceptable"]
    r = await ctl("invite", "list", DOMAIN)
    assert f"0 pending invitation(s) on {DOMAIN}" in r.stdout
    assert "not running" not in r.stdout


async def test_invites_through_the_running_xmppd(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra=MODULES + "control_socket = true\n")
    ctl = ctl_in(cfg)
    r = await ctl("adduser", f"alice@{DOMAIN}", "--password-stdin", input="pw\n")
    assert r.returncode == 0, r.stderr
    d = start_daemon(cfg).wait_ready()
    r = await ctl("invite", "create", DOMAIN)
    assert r.returncode == 0, r.stderr
    assert "not running" not in r.stdout
    token = token_of(r.stdout)
    r = await ctl("invite", "contact", f"alice@{DOMAIN}", "--allow-registration")
    assert r.returncode == 0, r.stderr
    assert re.match(rf"xmpp:alice@{DOMAIN}\?roster;preauth=[\w-]+;ibr=y", r.stdout)
    contact = token_of(r.stdout)
    r = await ctl("invite", "list", DOMAIN)
    assert token in r.stdout and contact in r.stdout and f"contact with alice@{DOMAIN}" in r.stdout
    r = await ctl("invite", "revoke", DOMAIN, f"xmpp:{DOMAIN}?register;preauth={token}")
    assert r.returncode == 0, r.stderr
    assert await try_register(d, f"late@{DOMAIN}", token) == ["item-not-found", "not-acceptable"]
    assert (await try_register(d, f"bob@{DOMAIN}", contact))[-1] == "logged in"
    r = await ctl("invite", "revoke", DOMAIN, token)
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no invitation {token!r} on {DOMAIN}")
    # deleting the inviter revokes their invitations
    r = await ctl("invite", "contact", f"alice@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    r = await ctl("deluser", f"alice@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    r = await ctl("invite", "list", DOMAIN)
    assert f"0 pending invitation(s) on {DOMAIN}" in r.stdout


async def test_bad_input(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files, extra=MODULES)
    ctl = ctl_in(cfg)
    for args, message in [
        (("invite", "create", "nowhere.test"),
         "xmppctl: unknown domain 'nowhere.test': no VirtualHost for it in"),
        (("invite", "create", DOMAIN, "--expires", "soon"),
         "xmppctl: --expires: expected a duration like"),
        (("invite", "create", DOMAIN, "--expires", "never"), "xmppctl: --expires: invitations must expire"),
        (("invite", "create", "a@b@c"), "xmppctl: invalid JID 'a@b@c'"),
        (("invite", "contact", DOMAIN), f"xmppctl: expected an account (user@domain), got '{DOMAIN}'"),
        (("invite", "revoke", DOMAIN, "nosuchtoken"), f"xmppctl: no invitation 'nosuchtoken' on {DOMAIN}"),
        (("invite", "list", "bad domain"), "xmppctl: invalid domain 'bad domain'"),
    ]:
        r = await ctl(*args)
        assert r.returncode != 0, args
        assert r.stderr.startswith(message), (args, r.stderr)
    r = await ctl("invite")
    assert r.returncode == 2 and "ACTION" in r.stderr
    r = await ctl("invite", "contact", f"ghost@{DOMAIN}")
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no account ghost@{DOMAIN}")
    r = await ctl("invite", "reset", f"ghost@{DOMAIN}")
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no account ghost@{DOMAIN}")
    r = await ctl("adduser", f"carol@{DOMAIN}", "--password-stdin", input="pw\n")
    assert r.returncode == 0, r.stderr
    r = await ctl("invite", "create", f"carol@{DOMAIN}")
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: the account carol@{DOMAIN} already exists")
    r = await ctl("invite", "reset", f"carol@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"xmpp:carol@{DOMAIN}?register;preauth=")
    assert f"new password for carol@{DOMAIN}; single-use" in r.stdout
    assert (await ctl("invite", "revoke", DOMAIN, token_of(r.stdout))).returncode == 0
    r = await ctl("invite", "contact", f"carol@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    assert f"1 pending invitation(s) on {DOMAIN}" in (await ctl("invite", "list", DOMAIN)).stdout
    # her account deleted with xmppd stopped: her invitation goes with it
    assert (await ctl("deluser", f"carol@{DOMAIN}")).returncode == 0
    assert f"0 pending invitation(s) on {DOMAIN}" in (await ctl("invite", "list", DOMAIN)).stdout
    # a host without the invites modules
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg2 = write_tree(plain, cert_files)
    r = await asyncio.to_thread(run_ctl, "--config", str(cfg2), "invite", "create", DOMAIN)
    assert r.returncode == 1
    assert r.stderr.startswith(f"xmppctl: invitations are not enabled on {DOMAIN}")
