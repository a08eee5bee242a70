"""Pieces of the extensible SASL profile that need no stream: the keys an upgrade
task stores (XEP-0480), Bind 2's resource (XEP-0386), the failure element."""
from __future__ import annotations

import hashlib
import base64

import pytest
from scramp.utils import saslprep

from xmppd.core.credentials import keys_from_salted_password, make_credentials, verify_password
from xmppd.protocol.sasl2 import resource_for
from xmppd.xmpp import ns
from xmppd.xmpp.errors import SASLFailure


@pytest.mark.parametrize("hash_key, name", [("scram-sha-256", "sha256"), ("scram-sha-1", "sha1")])
def test_keys_from_the_clients_salted_password_are_the_password_keys(hash_key, name):
    creds = make_credentials("pencil ü", iterations=4096)
    salted = hashlib.pbkdf2_hmac(name, saslprep("pencil ü").encode(), base64.b64decode(creds["salt"]),
                                 creds["iterations"])
    assert keys_from_salted_password(hash_key, salted) == creds[hash_key]
    # a record that got its SHA-256 keys that way checks the password like any other
    sha1_only = {k: v for k, v in creds.items() if k != "scram-sha-256"}
    upgraded = {**sha1_only, hash_key: keys_from_salted_password(hash_key, salted)}
    assert verify_password(upgraded, "pencil ü") and not verify_password(upgraded, "pencil")


def test_keys_from_a_salted_password_of_the_wrong_length_or_hash():
    with pytest.raises(ValueError):
        keys_from_salted_password("scram-sha-256", b"x" * 20)
    with pytest.raises(ValueError):
        keys_from_salted_password("scram-sha-512", b"x" * 64)


def test_bind2_resource():
    a = resource_for("Conversations", "ua-1", "alice@example.org")
    assert a == resource_for("Conversations", "ua-1", "alice@example.org")     # stable
    assert a != resource_for("Conversations", "ua-2", "alice@example.org")
    assert a != resource_for("Conversations", "ua-1", "bob@example.org")      # per account
    assert a.startswith("Conversations.") and "ua-1" not in a                 # the id stays hidden
    assert resource_for(None, "ua-1", "alice@example.org") == a.split(".", 1)[1]
    assert resource_for("x" * 500, "ua-1", "a@b").startswith("x" * 64 + ".")
    assert resource_for(None, None, "a@b") != resource_for(None, None, "a@b")  # random without an id


def test_sasl2_failure_element():
    el = SASLFailure("not-authorized", "wrong token").to_sasl2_element()
    assert el.tag == f"{{{ns.SASL2}}}failure"
    assert el.find(f"{{{ns.SASL}}}not-authorized") is not None
    assert el.findtext(f"{{{ns.SASL2}}}text") == "wrong token"
