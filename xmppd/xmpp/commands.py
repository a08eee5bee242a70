"""Ad-Hoc Commands (XEP-0050): what a command handler gets and gives back, and the
``<command/>`` answers and errors.

A module offers a command with an ``AdhocCommand`` item (``xmppd.moduleapi``);
the ``adhoc`` module runs it. The handler gets a :class:`Request` and returns a
:class:`Reply`::

    def uptime(request):
        return commands.completed(info="up for 3 days")

    def add_user(request):                 # one form, then done
        if request.form is None:
            return commands.ask(forms.build(ns.ADMIN, [...], title="Adding a User"))
        sub = forms.read(request.form, form_type=ns.ADMIN)
        ...
        return commands.completed(info="Account successfully created")

A reply that asks for more (``status="executing"``) keeps the session: the next
request carries its ``state`` back. ``prev`` is the framework's: it shows the
previous stage again, when that stage offered ``prev``. ``cancel`` never reaches
the handler.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from . import ns
from .errors import StanzaError

COMMAND = f"{{{ns.COMMANDS}}}command"
ACTIONS = ("execute", "cancel", "prev", "next", "complete")
STATUSES = ("executing", "completed", "canceled")
NOTE_TYPES = ("info", "warn", "error")


@dataclass
class Request:
    """One ``<command/>`` of a running session, as the handler sees it."""
    node: str
    action: str                       # execute, next or complete (prev and cancel are handled)
    form: ET.Element | None           # the submitted ``<x xmlns='jabber:x:data'/>``, if any
    state: Any                        # the previous reply's ``state`` (None at the start)
    from_jid: str
    from_bare: str
    sessionid: str
    host: Any = None                  # the host the command runs on
    origin: Any = None                # the requester's session or stream


@dataclass
class Reply:
    """What a handler answers. ``form``: a data form (``type='form'`` to fill in, or
    ``'result'``); ``notes``: ``(type, text)`` pairs; ``actions`` the next actions
    offered while executing, ``default`` the one ``execute`` means."""
    status: str = "completed"
    form: ET.Element | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)
    actions: tuple[str, ...] = ("complete",)
    default: str | None = None
    state: Any = None
    payload: list[ET.Element] = field(default_factory=list)   # other children

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown command status {self.status!r}")
        for t, _ in self.notes:
            if t not in NOTE_TYPES:
                raise ValueError(f"unknown note type {t!r}")
        for a in self.actions:
            if a not in ("prev", "next", "complete"):
                raise ValueError(f"{a!r} is not an action a command offers")


def _notes(info=None, warn=None, error=None) -> list[tuple[str, str]]:
    return [(t, text) for t, text in (("info", info), ("warn", warn), ("error", error)) if text]


def completed(*, info: str | None = None, warn: str | None = None, error: str | None = None,
              form: ET.Element | None = None) -> Reply:
    """The command is done (with a note, a result form, or both)."""
    return Reply("completed", form=form, notes=_notes(info, warn, error), actions=())


def ask(form: ET.Element, *, actions: tuple[str, ...] = ("complete",), default: str | None = None,
        state: Any = True, info: str | None = None, warn: str | None = None,
        error: str | None = None) -> Reply:
    """A stage that asks the requester to fill in ``form``."""
    return Reply("executing", form=form, notes=_notes(info, warn, error), actions=actions,
                 default=default or (actions[-1] if actions else None), state=state)


def element(node: str, status: str, sessionid: str | None, reply: Reply | None = None) -> ET.Element:
    """The ``<command/>`` answer."""
    attrs = {"node": node, "status": status}
    if sessionid:
        attrs["sessionid"] = sessionid
    cmd = ET.Element(COMMAND, attrs)
    if reply is None:
        return cmd
    if status == "executing":
        acts = ET.SubElement(cmd, f"{{{ns.COMMANDS}}}actions")
        if reply.default:
            acts.set("execute", reply.default)
        for a in reply.actions:
            ET.SubElement(acts, f"{{{ns.COMMANDS}}}{a}")
    for t, text in reply.notes:
        note = ET.SubElement(cmd, f"{{{ns.COMMANDS}}}note", {"type": t})
        note.text = text
    if reply.form is not None:
        cmd.append(reply.form)
    cmd.extend(reply.payload)
    return cmd


def error(condition: str, specific: str, text: str | None = None) -> StanzaError:
    """An error with XEP-0050's application condition (``bad-action``,
    ``bad-sessionid``, ``malformed-action``, ``session-expired``, ``bad-payload``)."""
    return StanzaError(condition, text, app=ET.Element(f"{{{ns.COMMANDS}}}{specific}"))
