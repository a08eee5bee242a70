"""Room configuration (XEP-0045 §10.2): the ``muc#roomconfig`` form and its options.

``RoomConfig`` is the room's settings; ``config_form`` renders them as the owner's
form, ``apply_form`` validates a submitted form and returns the status codes that
tell occupants what changed (104 any change, 170/171 logging on/off, 172/173
non-anonymous/semi-anonymous).

Hooks: the owner's IQs (``muc#owner``: get the form, submit or cancel it, destroy
the room), and the room's disco#info (the ``muc_*`` features and the settings the
``muc#roominfo`` form shows).
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from xmppd.xmpp import forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as jid_bare

from .events import DISCO_INFO, room_iq_event

ROOMCONFIG = ns.MUC_ROOMCONFIG
OWNER = ns.MUC_OWNER

WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
MAX_USERS_CHOICES = ("10", "20", "30", "50", "100", "none")


@dataclass
class RoomConfig:
    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""
    whois: str = "moderators"
    max_users: int = 0           # 0: no limit
    change_subject: bool = False  # may participants change the subject?
    allow_invites: bool = False   # may participants invite?
    allow_pm: str = "anyone"
    logging: bool = True          # archive messages (XEP-0313)
    history_length: int = 20
    lang: str = ""

    @property
    def anonymous(self) -> bool:
        return self.whois != "anyone"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RoomConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def config_form(cfg: RoomConfig, room_jid: str, max_history: int,
                hidden: frozenset[str] = frozenset()) -> ET.Element:
    """The owner's configuration form (§10.2), less the ``hidden`` fields (those
    this owner may not change)."""
    F = forms.Field
    return forms.build(ROOMCONFIG, [f for f in [
        F("muc#roomconfig_roomname", "text-single", cfg.name, label="Title"),
        F("muc#roomconfig_roomdesc", "text-single", cfg.description, label="Description"),
        F("muc#roomconfig_lang", "text-single", cfg.lang, label="Language"),
        F("muc#roomconfig_persistentroom", "boolean", cfg.persistent,
          label="Persistent (not destroyed when the last occupant leaves)"),
        F("muc#roomconfig_publicroom", "boolean", cfg.public,
          label="Listed in the public list of rooms"),
        F("muc#roomconfig_membersonly", "boolean", cfg.members_only, label="Only members may enter"),
        F("muc#roomconfig_moderatedroom", "boolean", cfg.moderated,
          label="Only occupants with voice may send messages"),
        F("muc#roomconfig_passwordprotectedroom", "boolean", bool(cfg.password),
          label="Password required to enter"),
        F("muc#roomconfig_roomsecret", "text-private", cfg.password, label="Password"),
        F("muc#roomconfig_whois", "list-single", cfg.whois, label="Who may see real JIDs",
          options=[("moderators", "Moderators only"), ("anyone", "Anyone")]),
        F("muc#roomconfig_maxusers", "list-single",
          str(cfg.max_users) if cfg.max_users else "none", label="Maximum number of occupants",
          options=[(v, v) for v in MAX_USERS_CHOICES]),
        F("muc#roomconfig_changesubject", "boolean", cfg.change_subject,
          label="Participants may change the subject"),
        F("muc#roomconfig_allowinvites", "boolean", cfg.allow_invites,
          label="Participants may invite others"),
        F("muc#roomconfig_allowpm", "list-single", cfg.allow_pm,
          label="Who may send private messages",
          options=[("anyone", "Anyone"), ("participants", "Participants"),
                   ("moderators", "Moderators"), ("none", "Nobody")]),
        F("muc#roomconfig_enablelogging", "boolean", cfg.logging,
          label="Archive messages (message archive of the room)"),
        F("muc#maxhistoryfetch", "text-single", cfg.history_length,
          label=f"Messages sent to new occupants (at most {max_history})"),
    ] if f.var not in hidden], title=f"Configuration for {room_jid}")


def _bool(values: list[str], var: str) -> bool:
    v = (values[0] if values else "").strip().lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false", ""):
        return False
    raise StanzaError("not-acceptable", f"{var}: expected a boolean")


def _int(values: list[str], var: str, *, none_is: int = 0) -> int:
    v = (values[0] if values else "").strip().lower()
    if v in ("", "none"):
        return none_is
    try:
        n = int(v)
    except ValueError:
        raise StanzaError("not-acceptable", f"{var}: expected a number") from None
    if n < 0:
        raise StanzaError("not-acceptable", f"{var}: expected a positive number")
    return n


def _choice(values: list[str], var: str, choices) -> str:
    v = (values[0] if values else "").strip()
    if v not in choices:
        raise StanzaError("not-acceptable", f"{var}: expected one of {', '.join(choices)}")
    return v


def apply_form(cfg: RoomConfig, form: ET.Element, max_history: int,
               hidden: frozenset[str] = frozenset()) -> tuple[RoomConfig, list[int]]:
    """Validate a submitted form; returns the new config and the status codes to send.

    Fields not in the form keep their value (§10.2: a submission may carry only
    some fields), and so do the ``hidden`` ones (as Prosody, silently). Nothing
    changes if any field is invalid.
    """
    sub = forms.read(form, form_type=ROOMCONFIG, types=("submit", "form", "result"))
    new = dataclasses.replace(cfg)

    def get(var: str) -> list[str] | None:
        return sub.raw(var) if var in sub and var not in hidden else None
    if (v := get("muc#roomconfig_roomname")) is not None:
        new.name = (v[0] if v else "").strip()
    if (v := get("muc#roomconfig_roomdesc")) is not None:
        new.description = v[0] if v else ""
    if (v := get("muc#roomconfig_lang")) is not None:
        new.lang = (v[0] if v else "").strip()
    for var, attr in (("persistentroom", "persistent"), ("publicroom", "public"),
                      ("membersonly", "members_only"), ("moderatedroom", "moderated"),
                      ("changesubject", "change_subject"), ("allowinvites", "allow_invites"),
                      ("enablelogging", "logging")):
        full = f"muc#roomconfig_{var}"
        if (v := get(full)) is not None:
            setattr(new, attr, _bool(v, full))
    if (v := get("muc#roomconfig_whois")) is not None:
        new.whois = _choice(v, "muc#roomconfig_whois", WHOIS)
    if (v := get("muc#roomconfig_allowpm")) is not None:
        new.allow_pm = _choice(v, "muc#roomconfig_allowpm", ALLOW_PM)
    if (v := get("muc#roomconfig_maxusers")) is not None:
        new.max_users = _int(v, "muc#roomconfig_maxusers")
    for var in ("muc#maxhistoryfetch", "muc#roomconfig_historylength"):
        if (v := get(var)) is not None:
            new.history_length = min(_int(v, var, none_is=max_history), max_history)
    protected = get("muc#roomconfig_passwordprotectedroom")
    secret = get("muc#roomconfig_roomsecret")
    if secret is not None:
        new.password = secret[0] if secret else ""
    if protected is not None and not _bool(protected, "muc#roomconfig_passwordprotectedroom"):
        new.password = ""
    elif protected is not None and not new.password:
        raise StanzaError("not-acceptable", "a password-protected room needs a password")
    return new, status_codes(cfg, new)


def status_codes(old: RoomConfig, new: RoomConfig) -> list[int]:
    """§10.2.1: what occupants are told about a configuration change."""
    if old == new:
        return []
    codes = [104]
    if new.logging != old.logging:
        codes.append(170 if new.logging else 171)
    if new.whois != old.whois:
        codes.append(172 if new.whois == "anyone" else 173)
    return codes


# -- the owner's IQs (§10.1-10.2, §10.9) -------------------------------------------
def setup(m, service) -> None:
    m.hook(room_iq_event("get", OWNER, "query"), on_owner_get)
    m.hook(room_iq_event("set", OWNER, "query"), on_owner_set)
    m.hook(DISCO_INFO, info)


def on_owner_get(event):
    return event.reply(owner_get(event.room, event.payload, event.from_jid))


def on_owner_set(event):
    return event.reply(None, *owner_set(event.room, event.payload, event.from_jid))


def _is_owner(room, from_jid: str) -> bool:
    return room.affiliation(jid_bare(from_jid)) == "owner"


def restricted(room, from_jid: str) -> frozenset[str]:
    """The fields only server admins may set (``muc_room_allow_persistent`` and
    ``muc_room_allow_public`` off), for anyone else."""
    if jid_bare(from_jid) in room.env.admins:
        return frozenset()
    return room.env.restricted_fields


def owner_get(room, query: ET.Element, from_jid: str) -> ET.Element:
    if not _is_owner(room, from_jid):
        raise StanzaError("forbidden", "only owners may configure the room")
    out = ET.Element(ns.q(OWNER, "query"))
    out.append(config_form(room.config, room.jid, room.env.max_history,
                           restricted(room, from_jid)))
    return out


def owner_set(room, query: ET.Element, from_jid: str) -> list[ET.Element]:
    """Submit or cancel the form (a cancelled new room is destroyed), or destroy."""
    if not _is_owner(room, from_jid):
        raise StanzaError("forbidden", "only owners may configure or destroy the room")
    destroy = query.find(ns.q(OWNER, "destroy"))
    if destroy is not None:
        alt = destroy.get("jid")
        return room.destroy(destroy.findtext(ns.q(OWNER, "reason")), alt,
                            destroy.findtext(ns.q(OWNER, "password")))
    form = query.find(forms.X)
    if form is None:
        raise StanzaError("bad-request", "expected a data form or <destroy/>")
    t = form.get("type")
    if t == "cancel":
        if room.locked:
            # §10.1.3: cancelling the configuration of a new room destroys it
            return room.destroy()
        return []
    if t != "submit":
        raise StanzaError("bad-request", "the form must be submitted or cancelled")
    new, codes = apply_form(room.config, form, room.env.max_history, restricted(room, from_jid))
    if room.locked:
        codes = []  # nobody else can be in a locked room
    return room.configure(new, codes)


# -- what disco#info says of the configuration (§6.4) --------------------------------
def info(event) -> None:
    c = event.room.config
    event.features += [
        "muc_persistent" if c.persistent else "muc_temporary",
        "muc_public" if c.public else "muc_hidden",
        "muc_membersonly" if c.members_only else "muc_open",
        "muc_moderated" if c.moderated else "muc_unmoderated",
        "muc_nonanonymous" if not c.anonymous else "muc_semianonymous",
        "muc_passwordprotected" if c.password else "muc_unsecured",
    ]
    F = forms.Field
    event.fields += [
        F("muc#roominfo_description", None, c.description, label="Description"),
        F("muc#roomconfig_roomname", None, c.name, label="Title"),
        F("muc#roomconfig_changesubject", "boolean", c.change_subject,
          label="Participants may change the subject"),
        F("muc#roomconfig_allowinvites", "boolean", c.allow_invites,
          label="Participants may invite"),
        F("muc#maxhistoryfetch", None, c.history_length,
          label="Maximum number of history messages"),
    ]
    if c.lang:
        event.fields.append(F("muc#roominfo_lang", None, c.lang, label="Language"))
