"""Ad-hoc commands (XEP-0050) and service administration (XEP-0133), end to end:
an admin drives each command with slixmpp's ad-hoc client (xep_0050), and the
effect is checked as a user sees it (logins with a real client, SASL on the wire,
messages received, sessions closed)."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004.stanza import Form

from .clients import TIMEOUT, logged_in
from .conftest import DOMAIN, OTHER, start_server
from .test_sasl import scram, tls_stream

ADMIN_NS = "http://jabber.org/protocol/admin"
COMMANDS = "http://jabber.org/protocol/commands"
ADMIN = f"admin@{DOMAIN}"
PLUGINS = ("xep_0030", "xep_0004", "xep_0050")
HOST = f"""
    modules_enabled = {{ "disco", "presence", "admin_adhoc", "lastactivity" }}
"""


def node(name: str) -> str:
    return f"{ADMIN_NS}#{name}"


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST)
    await s.adduser(ADMIN)
    await s.adduser(f"bob@{DOMAIN}")
    try:
        yield s
    finally:
        await s.server.stop()


def admin_client(srv, *more, **kw):
    """The admin, and others, with the ad-hoc client plugin."""
    return logged_in(srv, ADMIN, *more, plugins=PLUGINS, **kw)


def submit(fields: dict) -> Form:
    f = Form()
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN_NS)
    for var, value in fields.items():
        f.add_field(var=var, value=value)
    return f


async def send(c, name: str, **kw):
    """One ``<command/>`` to the server; the answer's ``<command/>``."""
    iq = await c.plugin["xep_0050"].send_command(JID(DOMAIN), name, timeout=TIMEOUT, **kw)
    return iq["command"]


async def run(c, name: str, fields: dict | None = None):
    """Execute a command, check it asks for its form, submit ``fields``: the
    final ``<command/>``."""
    first = await send(c, name)
    assert first["status"] == "executing"
    assert first["sessionid"]
    assert first["form"]["type"] == "form"
    assert "complete" in first["actions"]
    done = await send(c, name, action="complete", sessionid=first["sessionid"],
                      payload=submit(fields or {}))
    assert done["status"] == "completed"
    assert done["sessionid"] == first["sessionid"]
    return done


def form_type(values: dict) -> str:
    """The FORM_TYPE of a form's values (slixmpp gives a hidden field's as a list)."""
    v = values["FORM_TYPE"]
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def notes(cmd) -> list[tuple[str, str]]:
    return cmd["notes"]


async def error_of(coro) -> tuple[str, list[str]]:
    """The error condition of a failed request and its application conditions."""
    with pytest.raises(IqError) as info:
        await coro
    err = info.value.iq["error"]
    app = [child.tag for child in err.xml if child.tag.startswith("{" + COMMANDS)]
    return err["condition"], app


async def login_answer(srv, user: str, password: str) -> str:
    """What the server answers a SCRAM login: the raw ``<success/>`` or ``<failure/>``."""
    raw, _ = await tls_stream(srv)
    try:
        return await scram(raw, "SCRAM-SHA-256", user, password)
    finally:
        raw.close()


# -- discovery -------------------------------------------------------------------------

async def test_admin_lists_commands_and_node_info(srv):
    async with admin_client(srv) as c:
        items = await c.plugin["xep_0050"].get_commands(JID(DOMAIN), timeout=TIMEOUT)
        listed = {i[1]: i[2] for i in items["disco_items"]["items"]}
        assert listed[node("add-user")] == "Add User"
        for name in ("delete-user", "disable-user", "reenable-user", "change-user-password",
                     "end-user-session", "get-online-users-list", "get-online-users-num",
                     "announce", "set-motd", "edit-motd", "delete-motd"):
            assert node(name) in listed, name
        assert listed["uptime"] == "Get uptime"
        assert all(i[0] == JID(DOMAIN) for i in items["disco_items"]["items"])

        info = await c.plugin["xep_0030"].get_info(JID(DOMAIN), node=node("add-user"),
                                                  timeout=TIMEOUT)
        assert ("automation", "command-node", None, "Add User") in info["disco_info"]["identities"]
        assert {COMMANDS, "jabber:x:data"} <= set(info["disco_info"]["features"])
        server = await c.plugin["xep_0030"].get_info(JID(DOMAIN), timeout=TIMEOUT)
        assert COMMANDS in server["disco_info"]["features"]
        lst = await c.plugin["xep_0030"].get_info(JID(DOMAIN), node=COMMANDS, timeout=TIMEOUT)
        assert ("automation", "command-list", None, "Ad-Hoc Commands") in lst["disco_info"]["identities"]


async def test_non_admin_sees_only_public_commands_and_is_forbidden(srv):
    async with logged_in(srv, f"bob@{DOMAIN}", plugins=PLUGINS) as bob:
        items = await bob.plugin["xep_0050"].get_commands(JID(DOMAIN), timeout=TIMEOUT)
        assert [i[1] for i in items["disco_items"]["items"]] == ["uptime"]
        cond, _ = await error_of(send(bob, node("add-user")))
        assert cond == "forbidden"
        cond, _ = await error_of(bob.plugin["xep_0030"].get_info(
            JID(DOMAIN), node=node("add-user"), timeout=TIMEOUT))
        assert cond == "forbidden"
        # bob cannot use an admin's session either
        async with admin_client(srv) as admin:
            first = await send(admin, node("add-user"))
            cond, _ = await error_of(send(bob, node("add-user"), action="complete",
                                          sessionid=first["sessionid"],
                                          payload=submit({"accountjid": f"eve@{DOMAIN}"})))
            assert cond == "forbidden"
        assert not await srv.server.accounts.exists(DOMAIN, "eve")


async def test_admin_of_one_host_is_not_admin_of_another(tmp_path, certs):
    # admin_adhoc on both hosts; carol is an admin of xmppd.test only
    s = await start_server(tmp_path, certs, extra='modules_enabled = { "disco", "admin_adhoc" }\n',
                           host_extra=f'    admins = {{ "carol@{DOMAIN}" }}\n')
    try:
        await s.adduser(f"carol@{DOMAIN}")
        await s.adduser(ADMIN)
        async with admin_client(s, f"carol@{DOMAIN}") as (admin, carol):
            for domain in (DOMAIN, OTHER):      # a global admin is everybody's
                items = await admin.plugin["xep_0050"].get_commands(JID(domain), timeout=TIMEOUT)
                assert node("add-user") in [i[1] for i in items["disco_items"]["items"]]
            items = await carol.plugin["xep_0050"].get_commands(JID(DOMAIN), timeout=TIMEOUT)
            assert node("add-user") in [i[1] for i in items["disco_items"]["items"]]
            items = await carol.plugin["xep_0050"].get_commands(JID(OTHER), timeout=TIMEOUT)
            assert not items["disco_items"]["items"]
            with pytest.raises(IqError) as info:
                await carol.plugin["xep_0050"].send_command(JID(OTHER), node("add-user"),
                                                             timeout=TIMEOUT)
            assert info.value.iq["error"]["condition"] == "forbidden"
    finally:
        await s.server.stop()


# -- accounts -------------------------------------------------------------------------

async def test_add_user_then_the_user_logs_in(srv):
    async with admin_client(srv) as c:
        # the callback workflow a client like Gajim follows: execute, fill in, complete
        adhoc = c.plugin["xep_0050"]
        done = asyncio.get_running_loop().create_future()

        def got_form(iq, session):
            values = iq["command"]["form"].get_values()
            if not (set(values) >= {"FORM_TYPE", "accountjid", "password", "password-verify"}
                    and form_type(values) == ADMIN_NS):
                done.set_exception(AssertionError(f"unexpected form {values}"))
                return
            session["payload"] = submit({"accountjid": f"dave@{DOMAIN}", "password": "s3cret",
                                         "password-verify": "s3cret"})
            session["next"] = finished
            adhoc.complete_command(session)

        def finished(iq, session):
            done.set_result(iq["command"])

        def failed(iq, session):
            done.set_exception(AssertionError(iq))

        adhoc.start_command(JID(DOMAIN), node("add-user"), {"next": got_form, "error": failed})
        cmd = await asyncio.wait_for(done, TIMEOUT)
        assert cmd["status"] == "completed"
        assert notes(cmd) == [("info", "Account successfully created")]
        again = await run(c, node("add-user"), {"accountjid": f"dave@{DOMAIN}",
                                                 "password": "x", "password-verify": "x"})
        assert notes(again) == [("error", "Account already exists")]
        mismatch = await run(c, node("add-user"), {"accountjid": f"erin@{DOMAIN}",
                                                    "password": "a", "password-verify": "b"})
        assert notes(mismatch)[0][0] == "error"
        elsewhere = await run(c, node("add-user"), {"accountjid": f"erin@{OTHER}",
                                                     "password": "a", "password-verify": "a"})
        assert notes(elsewhere)[0][0] == "error"
    assert not await srv.server.accounts.exists(DOMAIN, "erin")
    assert not await srv.server.accounts.exists(OTHER, "erin")
    async with logged_in(srv, f"dave@{DOMAIN}", password="s3cret") as dave:
        assert dave.boundjid.bare == f"dave@{DOMAIN}"


async def test_delete_users(srv):
    await srv.adduser(f"carol@{DOMAIN}")
    async with admin_client(srv) as c:
        async with logged_in(srv, f"bob@{DOMAIN}") as bob:
            closed = bob.disconnected
            done = await run(c, node("delete-user"),
                             {"accountjids": [f"bob@{DOMAIN}", f"carol@{DOMAIN}",
                                              f"nobody@{DOMAIN}"]})
            kind, text = notes(done)[0]
            assert kind == "warn"
            assert f"bob@{DOMAIN}" in text and f"nobody@{DOMAIN} (" in text
            await asyncio.wait_for(closed, TIMEOUT)   # its session was closed
            assert [e["condition"] for e in bob.stream_errors] == ["not-authorized"]
    assert not await srv.server.accounts.exists(DOMAIN, "bob")
    assert not await srv.server.accounts.exists(DOMAIN, "carol")
    assert "<not-authorized" in await login_answer(srv, "bob", "secret")


async def test_change_password(srv):
    async with admin_client(srv) as c:
        done = await run(c, node("change-user-password"),
                         {"accountjid": f"bob@{DOMAIN}", "password": "n3w"})
        assert notes(done) == [("info", "Password successfully changed")]
        missing = await run(c, node("change-user-password"),
                            {"accountjid": f"nobody@{DOMAIN}", "password": "n3w"})
        assert notes(missing)[0][0] == "error"
    assert "<not-authorized" in await login_answer(srv, "bob", "secret")
    async with logged_in(srv, f"bob@{DOMAIN}", password="n3w"):
        pass


async def test_disable_and_reenable_user(srv):
    async with admin_client(srv) as c:
        async with logged_in(srv, f"bob@{DOMAIN}") as bob:
            closed = bob.disconnected
            done = await run(c, node("disable-user"), {"accountjids": [f"bob@{DOMAIN}"]})
            assert notes(done)[0][0] == "info"
            await asyncio.wait_for(closed, TIMEOUT)
            assert [e["condition"] for e in bob.stream_errors] == ["not-authorized"]
        answer = await login_answer(srv, "bob", "secret")
        assert "<account-disabled" in answer, answer
        # the data stays: the account exists, and a new password does not enable it
        assert await srv.server.accounts.exists(DOMAIN, "bob")
        await run(c, node("change-user-password"), {"accountjid": f"bob@{DOMAIN}",
                                                     "password": "other"})
        assert "<account-disabled" in await login_answer(srv, "bob", "other")
        done = await run(c, node("reenable-user"), {"accountjids": [f"bob@{DOMAIN}"]})
        assert notes(done)[0][0] == "info"
    async with logged_in(srv, f"bob@{DOMAIN}", password="other"):
        pass


async def test_end_user_session(srv):
    async with admin_client(srv) as c:
        async with logged_in(srv, f"bob@{DOMAIN}/phone", f"bob@{DOMAIN}/laptop") as (phone, laptop):
            closed = phone.disconnected
            done = await run(c, node("end-user-session"), {"accountjids": [f"bob@{DOMAIN}/phone"]})
            assert notes(done)[0][0] == "info"
            await asyncio.wait_for(closed, TIMEOUT)
            assert [e["condition"] for e in phone.stream_errors] == ["policy-violation"]
            assert laptop.is_connected() and not laptop.stream_errors
            closed = laptop.disconnected
            done = await run(c, node("end-user-session"), {"accountjids": [f"bob@{DOMAIN}"]})
            assert notes(done)[0][0] == "info"
            await asyncio.wait_for(closed, TIMEOUT)
        idle = await run(c, node("end-user-session"), {"accountjids": [f"bob@{DOMAIN}"]})
        assert notes(idle)[0][0] == "error"
    # ending a session is no ban: bob logs in again
    async with logged_in(srv, f"bob@{DOMAIN}"):
        pass


# -- online users, announcements, message of the day, uptime -----------------------------

async def test_online_users(srv):
    await srv.adduser(f"carol@{DOMAIN}")
    await srv.adduser(f"zed@{OTHER}")
    async with admin_client(srv, f"bob@{DOMAIN}/a", f"bob@{DOMAIN}/b", f"zed@{OTHER}") as (c, *_):
        done = await run(c, node("get-online-users-list"), {"max_items": "all"})
        form = done["form"]
        assert form["type"] == "result"
        values = form.get_values()
        assert form_type(values) == ADMIN_NS
        listed = sorted(map(str, values["onlineuserjids"]))
        assert listed == [ADMIN, f"bob@{DOMAIN}"]
        one = await run(c, node("get-online-users-list"), {"max_items": "25"})
        assert len(one["form"].get_values()["onlineuserjids"]) == 2
        num = await send(c, node("get-online-users-num"))
        assert num["status"] == "completed"
        assert num["form"].get_values()["onlineusersnum"] == "2"


async def test_announce_reaches_online_users(srv):
    async with admin_client(srv, f"bob@{DOMAIN}") as (c, bob):
        done = await run(c, node("announce"), {"subject": "Maintenance",
                                               "announcement": "Down at 10pm"})
        assert notes(done) == [("info", "Announcement sent to 2 online users")]
        msg = await bob.next_message()
        while msg["from"] != JID(DOMAIN):
            msg = await bob.next_message()
        assert msg["type"] == "headline"
        assert msg["subject"] == "Maintenance"
        assert msg["body"] == "Down at 10pm"


async def test_motd_at_login_and_after_restart(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST)
    try:
        await s.adduser(ADMIN)
        await s.adduser(f"bob@{DOMAIN}")
        async with admin_client(s) as c:
            done = await run(c, node("set-motd"), {"motd": ["Welcome to", "Falcot"]})
            assert notes(done)[0][0] == "info"
            first = await send(c, node("edit-motd"))
            assert first["form"].get_values()["motd"] == ["Welcome to", "Falcot"]
            await send(c, node("edit-motd"), action="cancel", sessionid=first["sessionid"])
    finally:
        await s.server.stop()
    s = await start_server(tmp_path, certs, host_extra=HOST)
    try:
        async with logged_in(s, f"bob@{DOMAIN}") as bob:
            msg = await bob.next_message()
            assert msg["from"] == JID(DOMAIN)
            assert msg["body"] == "Welcome to\nFalcot"
        async with admin_client(s) as c:
            await c.next_message()             # the admin's own MOTD
            done = await send(c, node("delete-motd"))
            assert done["status"] == "completed"
        async with logged_in(s, f"bob@{DOMAIN}", plugins=PLUGINS) as bob:
            # the MOTD comes before the answer to anything asked after login (the
            # server handles a client's stanzas in order): none came
            await bob.plugin["xep_0030"].get_info(JID(DOMAIN), timeout=TIMEOUT)
            assert bob.messages.empty()
    finally:
        await s.server.stop()


async def test_announce_and_motd_by_message(srv):
    """What Psi's admin menu sends: messages to HOST/announce/online (Prosody) and
    HOST/announce/motd[/update|/delete] (ejabberd)."""
    async with admin_client(srv, f"bob@{DOMAIN}") as (c, bob):
        c.send_message(mto=f"{DOMAIN}/announce/online", mbody="Reboot soon", msubject="Ops")
        msg = await bob.next_message()
        assert (msg["type"], msg["from"], msg["subject"], msg["body"]) == \
            ("headline", JID(DOMAIN), "Ops", "Reboot soon")
        bob.send_message(mto=f"{DOMAIN}/announce/online", mbody="I am no admin")
        err = await bob.next_error()
        assert err["error"]["condition"] == "forbidden"
        c.send_message(mto=f"{DOMAIN}/announce/motd", mbody="New rules")
        assert (await bob.next_message())["body"] == "New rules"    # sent to those online
        c.send_message(mto=f"{DOMAIN}/announce/motd/update", mbody="Newer rules")
        await c.plugin["xep_0030"].get_info(JID(DOMAIN), timeout=TIMEOUT)   # handled by now
        assert bob.messages.empty()                                 # set, not sent
    async with logged_in(srv, f"bob@{DOMAIN}") as bob:
        assert (await bob.next_message())["body"] == "Newer rules"
    async with admin_client(srv) as c:
        await c.next_message()
        c.send_message(mto=f"{DOMAIN}/announce/motd/delete")
        await c.plugin["xep_0030"].get_info(JID(DOMAIN), timeout=TIMEOUT)
    async with logged_in(srv, f"bob@{DOMAIN}", plugins=PLUGINS) as bob:
        await bob.plugin["xep_0030"].get_info(JID(DOMAIN), timeout=TIMEOUT)
        assert bob.messages.empty()


async def test_motd_text_option(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST + """
        motd_text = [[
            Welcome.
            Questions: joe
        ]]
    """)
    try:
        await s.adduser(f"bob@{DOMAIN}")
        async with logged_in(s, f"bob@{DOMAIN}") as bob:
            assert (await bob.next_message())["body"] == "Welcome.\nQuestions: joe"
    finally:
        await s.server.stop()


async def test_uptime_for_anyone(srv):
    async with logged_in(srv, f"bob@{DOMAIN}", plugins=PLUGINS) as bob:
        done = await send(bob, "uptime")
        assert done["status"] == "completed"
        [(kind, text)] = notes(done)
        assert kind == "info" and text.startswith("This server has been running for 0 days, 0 hours")


# -- XEP-0050's error paths -------------------------------------------------------------

async def test_errors(srv):
    async with admin_client(srv, f"bob@{DOMAIN}") as (c, _bob):
        cond, app = await error_of(send(c, "http://example.org/no-such-command"))
        assert cond == "item-not-found"
        cond, app = await error_of(send(c, node("add-user"), action="complete",
                                        sessionid="made-up"))
        assert (cond, app) == ("bad-request", [f"{{{COMMANDS}}}bad-sessionid"])
        cond, app = await error_of(send(c, node("add-user"), action="jump"))
        assert (cond, app) == ("bad-request", [f"{{{COMMANDS}}}malformed-action"])
        first = await send(c, node("add-user"))
        assert first["actions"] == {"complete"}
        cond, app = await error_of(send(c, node("add-user"), action="next",
                                        sessionid=first["sessionid"]))
        assert (cond, app) == ("bad-request", [f"{{{COMMANDS}}}bad-action"])
        cond, app = await error_of(send(c, node("add-user"), action="prev",
                                        sessionid=first["sessionid"]))
        assert (cond, app) == ("bad-request", [f"{{{COMMANDS}}}bad-action"])
        # the session lives on after a bad action; cancel ends it
        canceled = await send(c, node("add-user"), action="cancel", sessionid=first["sessionid"])
        assert canceled["status"] == "canceled"
        cond, app = await error_of(send(c, node("add-user"), action="complete",
                                        sessionid=first["sessionid"],
                                        payload=submit({"accountjid": f"eve@{DOMAIN}",
                                                        "password": "p",
                                                        "password-verify": "p"})))
        assert (cond, app) == ("bad-request", [f"{{{COMMANDS}}}bad-sessionid"])
        # a form of another FORM_TYPE is a bad request
        first = await send(c, node("add-user"))
        wrong = Form()
        wrong["type"] = "submit"
        wrong.add_field(var="FORM_TYPE", ftype="hidden", value="urn:example:other")
        cond, _ = await error_of(send(c, node("add-user"), action="complete",
                                      sessionid=first["sessionid"], payload=wrong))
        assert cond == "bad-request"
        # the stage stands: the right form completes it
        done = await send(c, node("add-user"), action="complete", sessionid=first["sessionid"],
                          payload=submit({"accountjid": f"fay@{DOMAIN}", "password": "p",
                                          "password-verify": "p"}))
        assert notes(done) == [("info", "Account successfully created")]
    assert not await srv.server.accounts.exists(DOMAIN, "eve")


async def test_session_expires(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST)
    try:
        await s.adduser(ADMIN)
        adhoc = s.server.hosts[DOMAIN].modules["adhoc"].provided
        async with admin_client(s) as c:
            first = await send(c, node("add-user"))
            clock = adhoc.now
            adhoc.now = lambda: clock() + adhoc.timeout + 1
            cond, app = await error_of(send(c, node("add-user"), action="complete",
                                            sessionid=first["sessionid"],
                                            payload=submit({"accountjid": f"eve@{DOMAIN}"})))
            assert (cond, app) == ("not-allowed", [f"{{{COMMANDS}}}session-expired"])
        assert not await s.server.accounts.exists(DOMAIN, "eve")
    finally:
        await s.server.stop()
