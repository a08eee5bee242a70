"""The role and affiliation tables of XEP-0045 §5, as data.

Everything the room decides about "may X do Y" is a lookup in these tables
(plus the room's configuration, which the callers apply on top: e.g. whether
participants may change the subject or invite).
"""
from __future__ import annotations

ROLES = ("none", "visitor", "participant", "moderator")
AFFILIATIONS = ("outcast", "none", "member", "admin", "owner")

ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
AFFILIATION_RANK = {a: i for i, a in enumerate(AFFILIATIONS)}

# §5.1.1 Table 2: privileges by role. Entries marked "*" in the XEP depend on the
# room configuration (change nick, private messages, invites, subject); they are
# listed here and the room's options restrict them.
ROLE_PRIVILEGES: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "visitor": frozenset({
        "present-in-room", "receive-messages", "receive-occupant-presence",
        "broadcast-presence", "change-availability", "change-nick",
        "send-private-messages", "invite",
    }),
    "participant": frozenset({
        "present-in-room", "receive-messages", "receive-occupant-presence",
        "broadcast-presence", "change-availability", "change-nick",
        "send-private-messages", "invite", "send-messages", "modify-subject",
    }),
    "moderator": frozenset({
        "present-in-room", "receive-messages", "receive-occupant-presence",
        "broadcast-presence", "change-availability", "change-nick",
        "send-private-messages", "invite", "send-messages", "modify-subject",
        "kick", "grant-voice", "revoke-voice",
    }),
}

# §5.2.1 Table 4: privileges by affiliation.
AFFILIATION_PRIVILEGES: dict[str, frozenset[str]] = {
    "outcast": frozenset(),
    "none": frozenset({"enter-open-room", "register-with-open-room"}),
    "member": frozenset({"enter-open-room", "enter-members-only-room",
                         "retrieve-member-list"}),
    "admin": frozenset({"enter-open-room", "enter-members-only-room",
                        "retrieve-member-list", "ban", "edit-member-list",
                        "assign-moderator", "remove-moderator"}),
    "owner": frozenset({"enter-open-room", "enter-members-only-room",
                        "retrieve-member-list", "ban", "edit-member-list",
                        "assign-moderator", "remove-moderator", "edit-admin-list",
                        "edit-owner-list", "change-config", "destroy"}),
}

# §5.1.2: the role an occupant gets on entering, by affiliation
# (moderated rooms give visitors' role to occupants without affiliation).
DEFAULT_ROLE = {
    "owner": "moderator",
    "admin": "moderator",
    "member": "participant",
    "none": "participant",
    "outcast": None,  # may not enter
}
DEFAULT_ROLE_MODERATED = {**DEFAULT_ROLE, "none": "visitor"}

# §9/§10: which affiliations an actor may hand out or take away. Both the old
# and the new affiliation of the target must be in the actor's set.
AFFILIATION_GRANTS: dict[str, frozenset[str]] = {
    "owner": frozenset(AFFILIATIONS),
    "admin": frozenset({"outcast", "none", "member"}),
    "member": frozenset(),
    "none": frozenset(),
    "outcast": frozenset(),
}

# §8/§9.4: roles a moderator may give, by the actor's affiliation. Giving or
# taking away "moderator" needs an admin or owner.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "owner": frozenset({"none", "visitor", "participant", "moderator"}),
    "admin": frozenset({"none", "visitor", "participant", "moderator"}),
    "member": frozenset({"none", "visitor", "participant"}),
    "none": frozenset({"none", "visitor", "participant"}),
    "outcast": frozenset(),
}

# Affiliation lists (§9.5, §9.8, §10.5, §10.8): who may read / edit each list.
LIST_READ = {
    "outcast": "ban",
    "member": "retrieve-member-list",
    "admin": "edit-admin-list",
    "owner": "edit-owner-list",
}
LIST_EDIT = {**LIST_READ, "member": "edit-member-list"}


def has_role_privilege(role: str, privilege: str) -> bool:
    return privilege in ROLE_PRIVILEGES.get(role, frozenset())


def has_affiliation_privilege(affiliation: str, privilege: str) -> bool:
    return privilege in AFFILIATION_PRIVILEGES.get(affiliation, frozenset())


def default_role(affiliation: str, *, moderated: bool = False) -> str | None:
    return (DEFAULT_ROLE_MODERATED if moderated else DEFAULT_ROLE).get(affiliation)


def may_set_affiliation(actor: str, target_old: str, target_new: str) -> bool:
    """May an occupant with affiliation ``actor`` change a user's affiliation
    from ``target_old`` to ``target_new``?"""
    allowed = AFFILIATION_GRANTS.get(actor, frozenset())
    return target_old in allowed and target_new in allowed


def may_set_role(actor_affiliation: str, actor_role: str, target_affiliation: str,
                 target_role: str, new_role: str) -> bool:
    """May the actor change an occupant's role from ``target_role`` to ``new_role``?

    Only moderators change roles; moderator status is given and taken by admins
    and owners; nobody changes the role of an admin or owner except an owner
    (and an admin's or owner's moderator role, which comes with the affiliation,
    is never taken away by a role change); a moderator never acts on someone with
    a higher affiliation than their own.
    """
    if actor_role != "moderator":
        return False
    grants = ROLE_GRANTS.get(actor_affiliation, frozenset())
    if new_role not in grants or target_role not in grants:
        return False
    if AFFILIATION_RANK[target_affiliation] >= AFFILIATION_RANK["admin"]:
        return False
    if AFFILIATION_RANK[target_affiliation] > AFFILIATION_RANK[actor_affiliation]:
        return False
    return True


def may_read_list(affiliation: str, role: str, which: str, *, kind: str = "affiliation") -> bool:
    """May an occupant read the ``which`` affiliation list (or role list)?"""
    if kind == "role":
        # §8.5 (voice list = participants), §9.7 (moderators): moderators may read
        # participants, admins and owners the moderators.
        if which == "participant":
            return role == "moderator"
        if which == "moderator":
            return AFFILIATION_RANK[affiliation] >= AFFILIATION_RANK["admin"]
        return False
    priv = LIST_READ.get(which)
    return priv is not None and has_affiliation_privilege(affiliation, priv)
