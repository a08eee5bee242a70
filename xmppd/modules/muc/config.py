"""Room configuration (XEP-0045 §10.2): the ``muc#roomconfig`` form and its options.

``RoomConfig`` is the room's settings; ``config_form`` renders them as the owner's
form, ``apply_form`` validates a submitted form and returns the status codes that
tell occupants what changed (104 any change, 170/171 logging on/off, 172/173
non-anonymous/semi-anonymous).
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from xmppd.xmpp.errors import StanzaError

from .ns import DATA, ROOMCONFIG, q

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


def _field(form, var, type_, label, value=None, options=()):
    f = ET.SubElement(form, q(DATA, "field"), {"var": var, "type": type_})
    if label:
        f.set("label", label)
    for opt_label, opt_value in options:
        o = ET.SubElement(f, q(DATA, "option"), {"label": opt_label})
        ET.SubElement(o, q(DATA, "value")).text = opt_value
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is not None:
            if isinstance(v, bool):
                v = "1" if v else "0"
            ET.SubElement(f, q(DATA, "value")).text = str(v)
    return f


def config_form(cfg: RoomConfig, room_jid: str, max_history: int) -> ET.Element:
    """The owner's configuration form (§10.2)."""
    form = ET.Element(q(DATA, "x"), {"type": "form"})
    ET.SubElement(form, q(DATA, "title")).text = f"Configuration for {room_jid}"
    _field(form, "FORM_TYPE", "hidden", None, ROOMCONFIG)
    _field(form, "muc#roomconfig_roomname", "text-single", "Title", cfg.name)
    _field(form, "muc#roomconfig_roomdesc", "text-single", "Description", cfg.description)
    _field(form, "muc#roomconfig_lang", "text-single", "Language", cfg.lang)
    _field(form, "muc#roomconfig_persistentroom", "boolean", "Persistent (not destroyed "
           "when the last occupant leaves)", cfg.persistent)
    _field(form, "muc#roomconfig_publicroom", "boolean", "Listed in the public list of rooms",
           cfg.public)
    _field(form, "muc#roomconfig_membersonly", "boolean", "Only members may enter",
           cfg.members_only)
    _field(form, "muc#roomconfig_moderatedroom", "boolean", "Only occupants with voice "
           "may send messages", cfg.moderated)
    _field(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password required "
           "to enter", bool(cfg.password))
    _field(form, "muc#roomconfig_roomsecret", "text-private", "Password", cfg.password)
    _field(form, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
           cfg.whois, [("Moderators only", "moderators"), ("Anyone", "anyone")])
    _field(form, "muc#roomconfig_maxusers", "list-single", "Maximum number of occupants",
           str(cfg.max_users) if cfg.max_users else "none",
           [(v, v) for v in MAX_USERS_CHOICES])
    _field(form, "muc#roomconfig_changesubject", "boolean", "Participants may change "
           "the subject", cfg.change_subject)
    _field(form, "muc#roomconfig_allowinvites", "boolean", "Participants may invite "
           "others", cfg.allow_invites)
    _field(form, "muc#roomconfig_allowpm", "list-single", "Who may send private messages",
           cfg.allow_pm, [("Anyone", "anyone"), ("Participants", "participants"),
                          ("Moderators", "moderators"), ("Nobody", "none")])
    _field(form, "muc#roomconfig_enablelogging", "boolean", "Archive messages (message "
           "archive of the room)", cfg.logging)
    _field(form, "muc#maxhistoryfetch", "text-single",
           f"Messages sent to new occupants (at most {max_history})", cfg.history_length)
    return form


def parse_form(form: ET.Element) -> dict[str, list[str]]:
    """``{var: [values]}`` of a submitted data form."""
    out: dict[str, list[str]] = {}
    for f in form.findall(q(DATA, "field")):
        var = f.get("var")
        if var:
            out[var] = [(v.text or "") for v in f.findall(q(DATA, "value"))]
    return out


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


def apply_form(cfg: RoomConfig, form: ET.Element, max_history: int) -> tuple[RoomConfig, list[int]]:
    """Validate a submitted form; returns the new config and the status codes to send.

    Fields not in the form keep their value (§10.2: a submission may carry only
    some fields). Nothing changes if any field is invalid.
    """
    values = parse_form(form)
    ft = values.get("FORM_TYPE")
    if ft and ft[0] != ROOMCONFIG:
        raise StanzaError("bad-request", "FORM_TYPE is not muc#roomconfig")
    new = dataclasses.replace(cfg)
    get = values.get
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
def owner_get(room, query: ET.Element, from_jid: str) -> ET.Element:
    from .room import bare_of
    from .ns import OWNER
    if room.affiliation(bare_of(from_jid)) != "owner":
        raise StanzaError("forbidden", "only owners may configure the room")
    out = ET.Element(q(OWNER, "query"))
    out.append(config_form(room.config, room.jid, room.env.max_history))
    return out


def owner_set(room, query: ET.Element, from_jid: str) -> list[ET.Element]:
    """Submit or cancel the form (a cancelled new room is destroyed), or destroy."""
    from .room import bare_of
    from .ns import OWNER
    if room.affiliation(bare_of(from_jid)) != "owner":
        raise StanzaError("forbidden", "only owners may configure or destroy the room")
    destroy = query.find(q(OWNER, "destroy"))
    if destroy is not None:
        alt = destroy.get("jid")
        return room.destroy(destroy.findtext(q(OWNER, "reason")), alt,
                            destroy.findtext(q(OWNER, "password")))
    form = query.find(q(DATA, "x"))
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
    new, codes = apply_form(room.config, form, room.env.max_history)
    if room.locked:
        codes = []  # nobody else can be in a locked room
    return room.configure(new, codes)
