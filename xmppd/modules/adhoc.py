"""Ad-Hoc Commands (XEP-0050): the commands other modules offer, listed and run.

Modules add ``AdhocCommand(node, name, handler, admin_only=...)`` items (kind
``adhoc``, as Prosody's ``module:provides("adhoc", ...)``); this module serves
them on the host:

* disco#items on node ``http://jabber.org/protocol/commands``: the commands the
  requester may run (admin-only ones for the host's ``admins`` only), sorted by node;
* disco#info on that node (identity ``automation/command-list``) and on each
  command's node (``automation/command-node``, features commands and
  ``jabber:x:data``; ``forbidden`` for a command the requester may not run);
* ``<command/>`` sets: ``execute`` starts a session (or continues one, meaning
  the stage's default action), ``next``/``complete`` go on, ``prev`` shows the
  previous stage again, ``cancel`` ends it. Errors are XEP-0050's:
  ``item-not-found`` (no such command), ``forbidden`` (not an admin),
  ``bad-request``+``malformed-action`` (no such action), ``bad-request``+
  ``bad-action`` (an action the stage did not offer), ``bad-request``+
  ``bad-sessionid`` (no such session, or another requester's),
  ``not-allowed``+``session-expired`` (left unanswered for
  ``adhoc_session_timeout`` seconds). An error the command raises (a bad form)
  leaves a running stage as it was: the requester may submit again or cancel.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from xmppd.moduleapi import EARLY, HANDLED, AdhocCommand, Option, iq_event
from xmppd.xmpp import commands, disco, ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0050"]
OPTIONS = [
    Option("adhoc_session_timeout", "number", 600, "both",
           "seconds a command session waits for the requester's next step before it expires",
           min=1),
]
ITEM = "adhoc"
MAX_SESSIONS_PER_JID = 16       # a requester's older sessions go when it starts more
EXPIRED_REMEMBERED = 1024       # expired session ids answered with session-expired


@dataclass
class Session:
    sessionid: str
    node: str
    owner: str                  # the requester's full JID
    expires: float
    stages: list = field(default_factory=list)   # the Reply of each stage so far


class Adhoc:
    """The commands of one host and their running sessions."""

    def __init__(self, host, timeout: float, log):
        self.host = host
        self.timeout = timeout
        self.log = log
        self.commands: dict[str, AdhocCommand] = {}
        self.sessions: dict[str, Session] = {}
        self.expired: OrderedDict[str, None] = OrderedDict()
        self.now = time.monotonic       # the tests move the clock

    # -- the items ------------------------------------------------------------
    def added(self, cmd) -> None:
        if isinstance(cmd, AdhocCommand):
            self.commands[cmd.node] = cmd

    def removed(self, cmd) -> None:
        if isinstance(cmd, AdhocCommand) and self.commands.get(cmd.node) is cmd:
            del self.commands[cmd.node]
            for sid in [s.sessionid for s in self.sessions.values() if s.node == cmd.node]:
                del self.sessions[sid]

    def allowed(self, cmd: AdhocCommand, jid: str | None) -> bool:
        return not cmd.admin_only or self.host.is_admin(jid)

    # -- disco ------------------------------------------------------------------
    async def disco_items(self, sev):
        if sev.payload is None or sev.payload.get("node") != ns.COMMANDS:
            return None
        entries = [(self.host.name, node, cmd.name) for node, cmd in sorted(self.commands.items())
                   if self.allowed(cmd, sev.from_jid)]
        return await self._answer(sev, disco.items(entries, node=ns.COMMANDS))

    async def disco_info(self, sev):
        node = sev.payload.get("node") if sev.payload is not None else None
        if node == ns.COMMANDS:
            return await self._answer(sev, disco.info([("automation", "command-list", "Ad-Hoc Commands")],
                                                node=node))
        cmd = self.commands.get(node) if node else None
        if cmd is None:
            return None             # not ours: the disco module answers
        if not self.allowed(cmd, sev.from_jid):
            raise StanzaError("forbidden", "this command is for the server's administrators")
        return await self._answer(sev, disco.info([("automation", "command-node", cmd.name)],
                                            [ns.COMMANDS, ns.DATA], node=node))

    async def _answer(self, sev, payload):
        await self.host.server.router.route(st.iq_result(sev.stanza, payload), self.host)
        return HANDLED

    # -- sessions -----------------------------------------------------------------
    def expire(self) -> None:
        now = self.now()
        for sid in [s.sessionid for s in self.sessions.values() if s.expires <= now]:
            del self.sessions[sid]
            self._remember_expired(sid)

    def _remember_expired(self, sid: str) -> None:
        self.expired[sid] = None
        while len(self.expired) > EXPIRED_REMEMBERED:
            self.expired.popitem(last=False)

    def _new_session(self, node: str, owner: str) -> Session:
        mine = [s for s in self.sessions.values() if s.owner == owner]
        for old in mine[:max(0, len(mine) - MAX_SESSIONS_PER_JID + 1)]:
            del self.sessions[old.sessionid]      # oldest first (dicts keep order)
        sess = Session(secrets.token_urlsafe(12), node, owner, self.now() + self.timeout)
        self.sessions[sess.sessionid] = sess
        return sess

    async def command(self, event):
        """An ``<iq type='set'><command/></iq>`` to the host."""
        el = event.payload
        node = el.get("node") or ""
        action = el.get("action") or "execute"
        sid = el.get("sessionid")
        cmd = self.commands.get(node)
        if cmd is None:
            raise StanzaError("item-not-found", "no such command")
        if not self.allowed(cmd, event.from_jid):
            raise StanzaError("forbidden", "this command is for the server's administrators")
        if action not in commands.ACTIONS:
            raise commands.error("bad-request", "malformed-action", f"unknown action {action!r}")
        self.expire()
        owner = event.from_jid or ""
        if sid is None:
            if action != "execute":
                raise commands.error("bad-request", "bad-sessionid",
                                     f"{action} needs the sessionid of a running command")
            sess = self._new_session(node, owner)
        else:
            sess = self.sessions.get(sid)
            if sess is None or sess.owner != owner or sess.node != node:
                if sid in self.expired:
                    raise commands.error("not-allowed", "session-expired",
                                         "this command session has expired")
                raise commands.error("bad-request", "bad-sessionid", "no such command session")
            last = sess.stages[-1]
            if action == "execute":
                action = last.default or "complete"
            if action != "cancel" and action not in last.actions:
                raise commands.error("bad-request", "bad-action",
                                     f"{action} is not offered at this stage")
            sess.expires = self.now() + self.timeout
        if action == "cancel":
            del self.sessions[sess.sessionid]
            return commands.element(node, "canceled", sess.sessionid)
        if action == "prev":
            sess.stages.pop()
            return commands.element(node, "executing", sess.sessionid, sess.stages[-1])
        state = sess.stages[-1].state if sess.stages else None
        request = commands.Request(node, action, el.find(f"{{{ns.DATA}}}x"), state,
                                   owner, event.from_bare or "", sess.sessionid, self.host,
                                   event.origin)
        try:
            reply = cmd.handler(request)
            if asyncio.iscoroutine(reply):
                reply = await reply
        except StanzaError:
            if not sess.stages:     # refused at once: no session to go on with
                self.sessions.pop(sess.sessionid, None)
            raise                   # else the stage stands: the requester may try again
        except Exception:
            self.sessions.pop(sess.sessionid, None)
            self.log.exception("command %s failed", node)
            raise StanzaError("internal-server-error", "the command failed") from None
        if reply.status == "executing":
            sess.stages.append(reply)
            if "prev" in reply.actions and len(sess.stages) < 2:
                reply.actions = tuple(a for a in reply.actions if a != "prev")
        else:
            self.sessions.pop(sess.sessionid, None)
        return commands.element(node, reply.status, sess.sessionid, reply)


def setup(m) -> None:
    adhoc = Adhoc(m.host, float(m.get_option("adhoc_session_timeout")), m.log)
    m.provide(adhoc)
    m.add_feature(ns.COMMANDS)
    m.handle_items(ITEM, adhoc.added, adhoc.removed)
    m.hook(iq_event("get", "host", ns.DISCO_ITEMS, "query"), adhoc.disco_items, EARLY)
    m.hook(iq_event("get", "host", ns.DISCO_INFO, "query"), adhoc.disco_info, EARLY)
    m.hook_iq("set", ns.COMMANDS, "command", adhoc.command)
    m.add_timer(60, adhoc.expire, repeat=True)
