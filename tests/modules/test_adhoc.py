"""The ad-hoc command framework (XEP-0050) with a command of several stages: the
actions each stage offers, ``execute`` as the stage's default, ``prev``, a crashing
handler, commands coming and going with their items, the cap on sessions."""
from __future__ import annotations

from tests.harness import Harness
from xmppd.moduleapi import AdhocCommand
from xmppd.modules import adhoc as adhoc_mod
from xmppd.xmpp import commands, forms, ns

NODE = "urn:example:wizard"
C = f"{{{ns.COMMANDS}}}"
E = f"{{{ns.CLIENT}}}"


def wizard(request: commands.Request) -> commands.Reply:
    """Two questions, then the answers: stage 1 offers next, stage 2 prev and complete."""
    answers = dict(request.state or {})
    if request.form is not None:
        answers.update({k: v[0] for k, v in forms.read(request.form).fields.items() if v})
    if request.state is None:
        return commands.ask(forms.build(None, [("name", "text-single")]), actions=("next",),
                            state={})
    if "colour" not in answers and request.action == "next":
        return commands.ask(forms.build(None, [("colour", "text-single")]),
                            actions=("prev", "complete"), state=answers)
    return commands.completed(info=f"{answers.get('name')} likes {answers.get('colour')}")


def crash(request):
    raise RuntimeError("boom")


def command(node: str, action: str | None = None, sessionid: str | None = None,
            form: dict | None = None) -> str:
    attrs = f" node='{node}'"
    if action:
        attrs += f" action='{action}'"
    if sessionid:
        attrs += f" sessionid='{sessionid}'"
    inner = ""
    if form:
        inner = "<x xmlns='jabber:x:data' type='submit'>" + "".join(
            f"<field var='{k}'><value>{v}</value></field>" for k, v in form.items()) + "</x>"
    return f"<command xmlns='{ns.COMMANDS}'{attrs}>{inner}</command>"


def actions(cmd) -> tuple[str | None, list[str]]:
    acts = cmd.find(f"{C}actions")
    return acts.get("execute"), [a.tag.removeprefix(C) for a in acts]


async def test_stages_next_prev_and_execute_as_the_default():
    async with Harness(modules=("adhoc",)) as h:
        h.host().add_item("adhoc", AdhocCommand(NODE, "Wizard", wizard, admin_only=False))
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("set", command(NODE), to="example.com")
        cmd = reply.find(f"{C}command")
        sid = cmd.get("sessionid")
        assert cmd.get("status") == "executing" and sid
        assert actions(cmd) == ("next", ["next"])
        # execute in a running session means the stage's default: next
        reply = await alice.iq("set", command(NODE, "execute", sid, {"name": "Ann"}), to="example.com")
        cmd = reply.find(f"{C}command")
        assert actions(cmd) == ("complete", ["prev", "complete"])
        assert cmd.find(f"{{{ns.DATA}}}x/{{{ns.DATA}}}field").get("var") == "colour"
        # prev: the first stage again, as it was
        reply = await alice.iq("set", command(NODE, "prev", sid), to="example.com")
        cmd = reply.find(f"{C}command")
        assert cmd.get("status") == "executing" and actions(cmd) == ("next", ["next"])
        assert cmd.find(f"{{{ns.DATA}}}x/{{{ns.DATA}}}field").get("var") == "name"
        reply = await alice.iq("set", command(NODE, "next", sid, {"name": "Bea"}), to="example.com")
        reply = await alice.iq("set", command(NODE, "complete", sid, {"colour": "green"}),
                               to="example.com")
        cmd = reply.find(f"{C}command")
        assert cmd.get("status") == "completed" and cmd.get("sessionid") == sid
        assert cmd.find(f"{C}note").text == "Bea likes green"
        assert cmd.find(f"{C}actions") is None
        # done: the session is gone
        reply = await alice.iq("set", command(NODE, "complete", sid), to="example.com")
        assert reply.get("type") == "error"
        assert reply.find(f"{E}error/{C}bad-sessionid") is not None


async def test_a_crashing_command_is_an_internal_error_and_ends_its_session():
    async with Harness(modules=("adhoc",)) as h:
        h.host().add_item("adhoc", AdhocCommand("urn:example:crash", "Crash", crash, admin_only=False))
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("set", command("urn:example:crash"), to="example.com")
        assert reply.get("type") == "error"
        assert reply.find(f"{E}error/{{{ns.STANZAS_ERR}}}internal-server-error") is not None
        assert h.host().modules["adhoc"].provided.sessions == {}


async def test_commands_come_and_go_with_their_items_and_sessions_are_capped():
    async with Harness(modules=("adhoc",)) as h:
        host = h.host()
        item = host.add_item("adhoc", AdhocCommand(NODE, "Wizard", wizard, admin_only=False))
        alice = await h.client("alice@example.com/phone")
        for _ in range(adhoc_mod.MAX_SESSIONS_PER_JID + 3):
            await alice.iq("set", command(NODE), to="example.com")
        adhoc = host.modules["adhoc"].provided
        assert len(adhoc.sessions) == adhoc_mod.MAX_SESSIONS_PER_JID
        host.remove_item(item)
        assert adhoc.sessions == {}
        reply = await alice.iq("set", command(NODE), to="example.com")
        assert reply.find(f"{E}error/{{{ns.STANZAS_ERR}}}item-not-found") is not None
