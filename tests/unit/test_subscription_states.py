"""The subscription state machine against the tables of RFC 6121 Appendix A.

The tables below are laid out as in the RFC (A.2: the user's server on outbound
stanzas, "ROUTE?"; A.3: the contact's server on inbound stanzas, "DELIVER?");
"no state change" keeps the state. Outbound "subscribed" without a pending request
is a pre-approval (§3.4) and outbound "unsubscribed" that cancels nothing is not
routed; both are marked "no" here.
"""
from __future__ import annotations

import pytest

from xmppd.core import roster as rm

TABLES = {
    ("outbound", "subscribe"): """
        | "None"                  | yes | "None + Pending Out"    |
        | "None + Pending Out"    | yes | no state change        |
        | "None + Pending In"     | yes | "None + Pending Out+In" |
        | "None + Pending Out+In" | yes | no state change        |
        | "To"                    | yes | no state change        |
        | "To + Pending In"       | yes | no state change        |
        | "From"                  | yes | "From + Pending Out"    |
        | "From + Pending Out"    | yes | no state change        |
        | "Both"                  | yes | no state change        |
    """,
    ("outbound", "unsubscribe"): """
        | "None"                  | yes | no state change        |
        | "None + Pending Out"    | yes | "None"                 |
        | "None + Pending In"     | yes | no state change        |
        | "None + Pending Out+In" | yes | "None + Pending In"    |
        | "To"                    | yes | "None"                 |
        | "To + Pending In"       | yes | "None + Pending In"    |
        | "From"                  | yes | no state change        |
        | "From + Pending Out"    | yes | "From"                 |
        | "Both"                  | yes | "From"                 |
    """,
    ("outbound", "subscribed"): """
        | "None"                  | no  | no state change        |
        | "None + Pending Out"    | no  | no state change        |
        | "None + Pending In"     | yes | "From"                 |
        | "None + Pending Out+In" | yes | "From + Pending Out"    |
        | "To"                    | no  | no state change        |
        | "To + Pending In"       | yes | "Both"                 |
        | "From"                  | no  | no state change        |
        | "From + Pending Out"    | no  | no state change        |
        | "Both"                  | no  | no state change        |
    """,
    ("outbound", "unsubscribed"): """
        | "None"                  | no  | no state change        |
        | "None + Pending Out"    | no  | no state change        |
        | "None + Pending In"     | yes | "None"                 |
        | "None + Pending Out+In" | yes | "None + Pending Out"    |
        | "To"                    | no  | no state change        |
        | "To + Pending In"       | yes | "To"                   |
        | "From"                  | yes | "None"                 |
        | "From + Pending Out"    | yes | "None + Pending Out"    |
        | "Both"                  | yes | "To"                   |
    """,
    ("inbound", "subscribe"): """
        | "None"                  | yes | "None + Pending In"     |
        | "None + Pending Out"    | yes | "None + Pending Out+In" |
        | "None + Pending In"     | no  | no state change         |
        | "None + Pending Out+In" | no  | no state change         |
        | "To"                    | yes | "To + Pending In"       |
        | "To + Pending In"       | no  | no state change         |
        | "From"                  | no  | no state change         |
        | "From + Pending Out"    | no  | no state change         |
        | "Both"                  | no  | no state change         |
    """,
    ("inbound", "unsubscribe"): """
        | "None"                  | no  | no state change        |
        | "None + Pending Out"    | no  | no state change        |
        | "None + Pending In"     | yes | "None"                 |
        | "None + Pending Out+In" | yes | "None + Pending Out"    |
        | "To"                    | no  | no state change        |
        | "To + Pending In"       | yes | "To"                   |
        | "From"                  | yes | "None"                 |
        | "From + Pending Out"    | yes | "None + Pending Out"    |
        | "Both"                  | yes | "To"                   |
    """,
    ("inbound", "subscribed"): """
        | "None"                  | no  | no state change        |
        | "None + Pending Out"    | yes | "To"                   |
        | "None + Pending In"     | no  | no state change        |
        | "None + Pending Out+In" | yes | "To + Pending In"      |
        | "To"                    | no  | no state change        |
        | "To + Pending In"       | no  | no state change        |
        | "From"                  | no  | no state change        |
        | "From + Pending Out"    | yes | "Both"                 |
        | "Both"                  | no  | no state change        |
    """,
    ("inbound", "unsubscribed"): """
        | "None"                  | no  | no state change        |
        | "None + Pending Out"    | yes | "None"                 |
        | "None + Pending In"     | no  | no state change        |
        | "None + Pending Out+In" | yes | "None + Pending In"    |
        | "To"                    | yes | "None"                 |
        | "To + Pending In"       | yes | "None + Pending In"    |
        | "From"                  | no  | no state change        |
        | "From + Pending Out"    | yes | "From"                 |
        | "Both"                  | yes | "From"                 |
    """,
}


def rows():
    for key, text in TABLES.items():
        for line in text.strip().splitlines():
            existing, passes, new = (c.strip().strip('"') for c in line.strip().strip("|").split("|"))
            yield key, existing, passes == "yes", (existing if new == "no state change" else new)


ROWS = list(rows())


def test_tables_cover_every_state_and_stanza():
    assert len(ROWS) == 8 * 9
    for key in TABLES:
        assert {r[1] for r in ROWS if r[0] == key} == set(rm.STATES)
    assert set(rm.TRANSITIONS) == set(TABLES)


@pytest.mark.parametrize("key,existing,passes,new", ROWS,
                         ids=[f"{k[0]}-{k[1]}-{e}" for k, e, _, _ in ROWS])
def test_transition(key, existing, passes, new):
    direction, ptype = key
    assert rm.transition(direction, ptype, existing) == (new, passes)


@pytest.mark.parametrize("key,existing,passes,new", ROWS,
                         ids=[f"{k[0]}-{k[1]}-{e}" for k, e, _, _ in ROWS])
def test_items_follow_the_states(key, existing, passes, new):
    """The stored item (subscription/ask/pending) round-trips through each state."""
    item = rm.set_state(rm.new_item(), existing)
    assert rm.state_of(item) == existing
    item = rm.set_state(item, new)
    assert rm.state_of(item) == new
    sub = item["subscription"]
    assert rm.is_subscribed(item, "to") == (new in (rm.TO, rm.TO_IN, rm.BOTH))
    assert rm.is_subscribed(item, "from") == (new in (rm.FROM, rm.FROM_OUT, rm.BOTH))
    assert (item["ask"] == "subscribe") == ("Pending Out" in new)
    assert sub == {"None": "none", "To": "to", "From": "from", "Both": "both"}[new.split(" ")[0]]


def test_no_state_is_in_the_wrong_form():
    assert rm.state_of(None) == rm.NONE
    with pytest.raises(KeyError):
        rm.state_of({"subscription": "both", "ask": "subscribe"})


def test_item_xml():
    item = rm.set_state(rm.new_item(), rm.NONE_OUT)
    item.update(name="Bob", groups=["A", "B"], approved=True)
    el = rm.item_element("bob@example.com", item)
    assert el.attrib == {"jid": "bob@example.com", "name": "Bob", "subscription": "none",
                         "ask": "subscribe", "approved": "true"}
    assert [g.text for g in el] == ["A", "B"]
    assert rm.item_element("bob@example.com", None).get("subscription") == "remove"
