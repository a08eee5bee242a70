"""The XEP-0045 §5 role and affiliation tables, as the room applies them."""
from __future__ import annotations

import pytest

from xmppd.modules.muc import permissions as p


@pytest.mark.parametrize("role,privilege,expected", [
    # §5.1.1 Table 2
    ("none", "present-in-room", False),
    ("visitor", "present-in-room", True),
    ("visitor", "receive-messages", True),
    ("visitor", "change-availability", True),
    ("visitor", "change-nick", True),
    ("visitor", "send-private-messages", True),
    ("visitor", "invite", True),
    ("visitor", "send-messages", False),
    ("visitor", "modify-subject", False),
    ("visitor", "kick", False),
    ("participant", "send-messages", True),
    ("participant", "modify-subject", True),
    ("participant", "kick", False),
    ("participant", "grant-voice", False),
    ("moderator", "send-messages", True),
    ("moderator", "kick", True),
    ("moderator", "grant-voice", True),
    ("moderator", "revoke-voice", True),
])
def test_role_privileges(role, privilege, expected):
    assert p.has_role_privilege(role, privilege) is expected


@pytest.mark.parametrize("affiliation,privilege,expected", [
    # §5.2.1 Table 4
    ("outcast", "enter-open-room", False),
    ("none", "enter-open-room", True),
    ("none", "register-with-open-room", True),
    ("none", "enter-members-only-room", False),
    ("member", "enter-members-only-room", True),
    ("member", "retrieve-member-list", True),
    ("member", "ban", False),
    ("admin", "ban", True),
    ("admin", "edit-member-list", True),
    ("admin", "assign-moderator", True),
    ("admin", "edit-admin-list", False),
    ("admin", "change-config", False),
    ("admin", "destroy", False),
    ("owner", "edit-admin-list", True),
    ("owner", "edit-owner-list", True),
    ("owner", "change-config", True),
    ("owner", "destroy", True),
])
def test_affiliation_privileges(affiliation, privilege, expected):
    assert p.has_affiliation_privilege(affiliation, privilege) is expected


def test_default_roles():
    # §5.1.2: owners and admins are moderators, members participants, outcasts out;
    # in a moderated room, occupants without affiliation are visitors
    assert p.default_role("owner") == "moderator"
    assert p.default_role("admin") == "moderator"
    assert p.default_role("member") == "participant"
    assert p.default_role("none") == "participant"
    assert p.default_role("none", moderated=True) == "visitor"
    assert p.default_role("member", moderated=True) == "participant"
    assert p.default_role("outcast") is None


@pytest.mark.parametrize("actor,old,new,expected", [
    ("owner", "none", "owner", True),
    ("owner", "admin", "none", True),
    ("owner", "none", "outcast", True),
    ("admin", "none", "member", True),
    ("admin", "member", "outcast", True),
    ("admin", "none", "admin", False),     # only owners make admins
    ("admin", "admin", "none", False),     # admins cannot touch other admins
    ("admin", "owner", "outcast", False),  # nor owners
    ("member", "none", "member", False),
    ("none", "none", "outcast", False),
])
def test_affiliation_changes(actor, old, new, expected):
    assert p.may_set_affiliation(actor, old, new) is expected


@pytest.mark.parametrize("actor_aff,actor_role,target_aff,target_role,new,expected", [
    ("none", "moderator", "none", "participant", "none", True),        # kick
    ("none", "moderator", "none", "participant", "visitor", True),     # revoke voice
    ("none", "moderator", "none", "visitor", "participant", True),     # grant voice
    ("none", "participant", "none", "participant", "none", False),     # not a moderator
    ("none", "moderator", "member", "participant", "none", False),     # higher affiliation
    ("member", "moderator", "member", "participant", "visitor", True),
    ("admin", "moderator", "admin", "moderator", "none", False),       # admins are never kicked
    ("owner", "moderator", "admin", "moderator", "none", False),
    ("admin", "moderator", "owner", "moderator", "visitor", False),
    ("none", "moderator", "none", "participant", "moderator", False),  # only admins+ grant moderator
    ("admin", "moderator", "member", "participant", "moderator", True),
    ("admin", "moderator", "none", "moderator", "participant", True),  # revoke moderator
    ("member", "moderator", "none", "moderator", "participant", False),
])
def test_role_changes(actor_aff, actor_role, target_aff, target_role, new, expected):
    assert p.may_set_role(actor_aff, actor_role, target_aff, target_role, new) is expected


@pytest.mark.parametrize("aff,role,which,kind,expected", [
    ("member", "participant", "member", "affiliation", True),
    ("none", "participant", "member", "affiliation", False),
    ("member", "participant", "outcast", "affiliation", False),
    ("admin", "moderator", "outcast", "affiliation", True),
    ("admin", "moderator", "admin", "affiliation", False),
    ("owner", "moderator", "owner", "affiliation", True),
    ("none", "moderator", "participant", "role", True),
    ("none", "participant", "participant", "role", False),
    ("none", "moderator", "moderator", "role", False),
    ("admin", "moderator", "moderator", "role", True),
])
def test_list_access(aff, role, which, kind, expected):
    assert p.may_read_list(aff, role, which, kind=kind) is expected
