"""vcard-temp (XEP-0054) through the harness: the own vCard, other accounts'
vCards, the size limit, and the avatar bridge (XEP-0398/XEP-0153) with pep
loaded, with pep absent, and pep without vcard."""
import base64
import hashlib

from xmppd.xmpp import ns
from tests.harness import Harness

ALICE = "alice@example.com"
VCARD = ns.q(ns.VCARD, "vCard")
EVENT = ns.q(ns.PUBSUB_EVENT, "event")
UPDATE = ns.q(ns.VCARD_UPDATE, "x")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
SHA1 = hashlib.sha1(PNG).hexdigest()


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return [c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR)][0]


def vcard(inner: str = "") -> str:
    return f"<vCard xmlns='{ns.VCARD}'>{inner}</vCard>"


def photo(data: bytes = PNG) -> str:
    return f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{base64.b64encode(data).decode()}</BINVAL></PHOTO>"


def avatar_publish(data: bytes = PNG) -> tuple[str, str]:
    sha1 = hashlib.sha1(data).hexdigest()
    b64 = base64.b64encode(data).decode()
    data_iq = (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.AVATAR_DATA}'><item id='{sha1}'>"
               f"<data xmlns='{ns.AVATAR_DATA}'>{b64}</data></item></publish></pubsub>")
    meta_iq = (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.AVATAR_METADATA}'><item id='{sha1}'>"
               f"<metadata xmlns='{ns.AVATAR_METADATA}'><info id='{sha1}' type='image/png' "
               f"bytes='{len(data)}'/></metadata></item></publish></pubsub>")
    return data_iq, meta_iq


async def presence_hash(client):
    """The XEP-0153 hash in the client's next own presence (None: no <x/>)."""
    await client.send_stanza("<presence><status>here</status></presence>")
    p = await client.next("presence", match=lambda e: e.get("from") == client.full_jid)
    xs = p.findall(UPDATE)
    if not xs:
        return None
    assert len(xs) == 1
    return xs[0].findtext(ns.q(ns.VCARD_UPDATE, "photo")) or ""


async def test_own_vcard_set_get_and_clear():
    async with Harness(modules=("vcard",)) as h:
        alice = await h.client(ALICE + "/phone")
        reply = await alice.iq("get", vcard())
        assert reply.get("type") == "result"
        got = reply.find(VCARD)
        assert got is not None and len(got) == 0        # none stored: an empty vCard
        assert (await alice.iq("set", vcard("<FN>Alice</FN>"))).get("type") == "result"
        reply = await alice.iq("get", vcard(), to=ALICE)
        assert reply.find(VCARD).findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        # what the module provides reads the same store
        stored = await h.host().provided("vcard").get("alice")
        assert stored.findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        # an empty vCard is stored as it is (Prosody's behaviour): whoever reads it
        # next gets the empty vCard, not item-not-found
        assert (await alice.iq("set", vcard())).get("type") == "result"
        assert len(await h.host().provided("vcard").get("alice")) == 0
        assert len((await alice.iq("get", vcard())).find(VCARD)) == 0
        bob = await h.client("bob@example.com/pc")
        reply = await bob.iq("get", vcard(), to=ALICE)
        assert reply.get("type") == "result" and len(reply.find(VCARD)) == 0


async def test_other_accounts_vcards():
    async with Harness(modules=("vcard",)) as h:
        alice = await h.client(ALICE + "/phone")
        bob = await h.client("bob@example.com/pc")
        await alice.iq("set", vcard("<FN>Alice</FN>"))
        reply = await bob.iq("get", vcard(), to=ALICE)
        assert reply.find(VCARD).findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        # bob has none: item-not-found for others, and for an account that does not exist
        assert error_of(await alice.iq("get", vcard(), to="bob@example.com")) == "item-not-found"
        assert error_of(await alice.iq("get", vcard(), to="nobody@example.com")) == "item-not-found"
        # nobody sets another's vCard
        assert error_of(await bob.iq("set", vcard("<FN>Mallory</FN>"), to=ALICE)) == "forbidden"
        reply = await bob.iq("get", vcard(), to=ALICE)
        assert reply.find(VCARD).findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        # the server has no vCard
        assert error_of(await alice.iq("get", vcard(), to="example.com")) == "item-not-found"


async def test_size_limit():
    async with Harness(modules=("vcard",), host_extra="vcard_max_size = 500\n") as h:
        alice = await h.client(ALICE + "/phone")
        assert error_of(await alice.iq("set", vcard("<FN>" + "x" * 600 + "</FN>"))) == "not-acceptable"
        assert (await alice.iq("set", vcard("<FN>" + "x" * 100 + "</FN>"))).get("type") == "result"


async def test_a_vcard_photo_becomes_the_pep_avatar():
    async with Harness(modules=("pep", "vcard")) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        assert (await alice.iq("set", vcard("<FN>Alice</FN>" + photo()))).get("type") == "result"
        nodes = []
        for _ in range(3):
            msg = await alice.next("message", match=lambda e: e.find(EVENT) is not None)
            nodes.append(msg.find(f"{EVENT}/{ns.q(ns.PUBSUB_EVENT, 'items')}").get("node"))
        # the photo, then the rest of the card as vCard4 (XEP-0292), as Prosody's vcard_legacy
        assert nodes == [ns.AVATAR_DATA, ns.AVATAR_METADATA, "urn:xmpp:vcard4"]
        reply = await alice.iq("get", f"<pubsub xmlns='{ns.PUBSUB}'>"
                                      f"<items node='{ns.AVATAR_METADATA}'/></pubsub>")
        info = reply.find(f".//{ns.q(ns.AVATAR_METADATA, 'info')}")
        assert info.get("id") == SHA1 and info.get("bytes") == str(len(PNG))
        assert await presence_hash(alice) == SHA1
        # the vCard itself is stored as sent
        reply = await alice.iq("get", vcard())
        assert reply.find(VCARD).findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        # a vCard refused for its size publishes nothing
        big = vcard("<FN>" + "x" * 40000 + "</FN>" + photo(b"another"))
        assert error_of(await alice.iq("set", big)) == "not-acceptable"
        await alice.server_tasks()
        assert [m for m in alice.received if m.find(EVENT) is not None] == []


async def test_a_pep_avatar_becomes_the_vcard_photo():
    async with Harness(modules=("disco", "vcard", "pep")) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        await alice.iq("set", vcard("<FN>Alice</FN>"))
        for payload in avatar_publish():
            assert (await alice.iq("set", payload)).get("type") == "result"
        reply = await alice.iq("get", vcard())
        card = reply.find(VCARD)
        assert card.findtext(ns.q(ns.VCARD, "FN")) == "Alice"
        binval = card.findtext(f"{ns.q(ns.VCARD, 'PHOTO')}/{ns.q(ns.VCARD, 'BINVAL')}")
        assert base64.b64decode(binval) == PNG
        assert await presence_hash(alice) == SHA1
        info = await alice.iq("get", f"<query xmlns='{ns.DISCO_INFO}'/>", to=ALICE)
        assert ns.VCARD_CONVERSION in {f.get("var") for f in info.iter(ns.q(ns.DISCO_INFO, "feature"))}


async def test_without_pep_a_photo_is_only_a_photo():
    async with Harness(modules=("vcard",)) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        assert (await alice.iq("set", vcard(photo()))).get("type") == "result"
        reply = await alice.iq("get", vcard())
        binval = reply.find(VCARD).findtext(f"{ns.q(ns.VCARD, 'PHOTO')}/{ns.q(ns.VCARD, 'BINVAL')}")
        assert base64.b64decode(binval) == PNG
        assert await presence_hash(alice) is None
        await alice.server_tasks()
        assert [m for m in alice.received if m.find(EVENT) is not None] == []


async def test_pep_without_vcard_keeps_the_avatar_hash():
    async with Harness(modules=("pep",)) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        assert await presence_hash(alice) is None            # no avatar known yet
        for payload in avatar_publish():
            assert (await alice.iq("set", payload)).get("type") == "result"
        assert await presence_hash(alice) == SHA1
        # there is no vCard service to write to
        assert error_of(await alice.iq("get", vcard())) == "service-unavailable"


async def test_a_stored_vcard_is_upgraded_to_pep_when_its_account_logs_in():
    """Prosody's upgrade_legacy_vcards: a vCard stored before the conversions (or
    imported) gets its vCard4, nickname and avatar in PEP at the next login."""
    from xmppd.xmpp.stanza import from_xml
    items = "<pubsub xmlns='{}'><items node='{}'/></pubsub>".format
    async with Harness(modules=("pep", "vcard")) as h:
        await h.adduser(ALICE)
        await h.host().modules["vcard"].provided.set(
            "alice", from_xml(vcard("<FN>Alice</FN><NICKNAME>Ally</NICKNAME>" + photo())))
        alice = await h.client(ALICE + "/phone")
        await alice.server_tasks()
        reply = await alice.iq("get", items(ns.PUBSUB, "urn:xmpp:vcard4"))
        v4 = "{urn:ietf:params:xml:ns:vcard-4.0}"
        assert reply.findtext(f".//{v4}fn/{v4}text") == "Alice"
        reply = await alice.iq("get", items(ns.PUBSUB, ns.NICK))
        assert reply.findtext(f".//{ns.q(ns.NICK, 'nick')}") == "Ally"
        reply = await alice.iq("get", items(ns.PUBSUB, ns.AVATAR_METADATA))
        assert reply.find(f".//{ns.q(ns.AVATAR_METADATA, 'info')}").get("id") == SHA1
        # the vCard stays as it was
        reply = await alice.iq("get", vcard())
        assert reply.find(VCARD).findtext(ns.q(ns.VCARD, "NICKNAME")) == "Ally"


async def test_no_upgrade_when_switched_off_or_pep_has_a_profile():
    from xmppd.xmpp.stanza import from_xml
    items = f"<pubsub xmlns='{ns.PUBSUB}'><items node='urn:xmpp:vcard4'/></pubsub>"
    async with Harness(modules=("pep", "vcard"), host_extra="upgrade_legacy_vcards = false\n") as h:
        await h.adduser(ALICE)
        await h.host().modules["vcard"].provided.set("alice", from_xml(vcard("<FN>Alice</FN>")))
        alice = await h.client(ALICE + "/phone")
        await alice.server_tasks()
        assert error_of(await alice.iq("get", items)) == "item-not-found"
    async with Harness(modules=("pep", "vcard")) as h:
        alice = await h.client(ALICE + "/phone")
        v4 = "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><fn><text>PEP Alice</text></fn></vcard>"
        assert (await alice.iq("set", v4)).get("type") == "result"
        await h.host().modules["vcard"].provided.set("alice", from_xml(vcard("<FN>Old</FN>")))
        phone2 = await h.client(ALICE + "/laptop")
        await phone2.server_tasks()
        reply = await phone2.iq("get", items)
        assert reply.findtext(".//{urn:ietf:params:xml:ns:vcard-4.0}text") == "PEP Alice"
