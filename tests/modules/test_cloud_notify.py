"""Push notifications (XEP-0357): registration by the account itself, the summary
form and publish options sent to the app server while nobody can take a message,
and a registration the app server refuses is forgotten."""
from tests.harness import Harness
from xmppd.modules.cloud_notify import publish_options, summary_form
from xmppd.stream import serialize
from xmppd.xmpp import forms, ns

C = "{" + ns.CLIENT + "}"
P = "{" + ns.PUBSUB + "}"
APP = "app@example.com/push"       # the app server, here a client of ours
SECRET_FORM = (f"<x xmlns='{ns.DATA}' type='submit'>"
               f"<field var='FORM_TYPE'><value>{ns.PUBSUB_PUBLISH_OPTIONS}</value></field>"
               "<field var='secret'><value>s3cr3t</value></field></x>")


def enable(node: str = "n1", form: str = "") -> str:
    return f"<enable xmlns='{ns.PUSH}' jid='{APP}' node='{node}'>{form}</enable>"


def chat(body: str) -> str:
    return f"<message to='alice@example.com' type='chat'><body>{body}</body></message>"


def notification(iq):
    """(node, summary fields, publish-options fields or None) of a publish IQ."""
    pubsub = iq.find(P + "pubsub")
    publish = pubsub.find(P + "publish")
    summary = forms.read(publish.find(f"{P}item/{{{ns.PUSH}}}notification/{forms.X}"),
                         form_type=ns.PUSH_SUMMARY)
    options = pubsub.find(P + "publish-options")
    opts = forms.read(options.find(forms.X), form_type=ns.PUBSUB_PUBLISH_OPTIONS) if options is not None else None
    return (publish.get("node"), dict(summary.fields, FORM_TYPE=summary.form_type),
            None if opts is None else opts.fields)


async def registered(h, form: str = SECRET_FORM):
    app = await h.client(APP)
    alice = await h.client("alice@example.com/phone", available=True)
    assert (await alice.iq("set", enable(form=form))).get("type") == "result"
    await alice.disconnect()
    bob = await h.client("bob@example.com/pc", available=True)
    return app, bob


async def test_notifications_while_nobody_takes_messages():
    async with Harness(modules=("cloud_notify",)) as h:
        app, bob = await registered(h)
        await bob.send_stanza(chat("first"))
        iq = await app.next("iq")
        assert iq.get("type") == "set" and iq.get("from") == "alice@example.com"
        assert iq.get("id").startswith("push-")
        node, summary, options = notification(iq)
        assert node == "n1"
        assert summary == {"FORM_TYPE": ns.PUSH_SUMMARY, "message-count": ["1"],
                           "last-message-sender": ["bob@example.com/pc"]}     # no body by default
        assert options == {"secret": ["s3cr3t"]}
        await bob.send_stanza(chat("second"))
        _, summary, _ = notification(await app.next("iq"))
        assert summary["message-count"] == ["2"]
        # messages without a body, and errors, notify nobody
        await bob.send_stanza(f"<message to='alice@example.com' type='chat'><active xmlns='{ns.CHATSTATES}'/></message>")
        assert [e for e in app.received if e.tag == C + "iq"] == []
        # back online: the count starts again, and nothing is pushed while online
        alice = await h.client("alice@example.com/laptop", available=True)
        await bob.send_stanza(chat("live"))
        assert [e for e in app.received if e.tag == C + "iq"] == []
        await alice.disconnect()
        await bob.send_stanza(chat("third"))
        _, summary, _ = notification(await app.next("iq"))
        assert summary["message-count"] == ["1"]


async def test_body_when_configured_and_no_publish_options_when_none_given():
    async with Harness(modules=("cloud_notify",),
                       host_extra="push_notification_with_body = true\npush_notification_with_sender = false\n") as h:
        app, bob = await registered(h, form="")
        await bob.send_stanza(chat("hello"))
        _, summary, options = notification(await app.next("iq"))
        assert summary == {"FORM_TYPE": ns.PUSH_SUMMARY, "message-count": ["1"], "last-message-body": ["hello"]}
        assert options is None


async def test_a_refusing_app_server_is_forgotten():
    async with Harness(modules=("cloud_notify",)) as h:
        app, bob = await registered(h)
        await bob.send_stanza(chat("first"))
        iq = await app.next("iq")
        await app.send_stanza(f"<iq type='error' id='{iq.get('id')}' to='alice@example.com'>"
                              "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                              "</error></iq>")
        await bob.send_stanza(chat("second"))
        assert [e for e in app.received if e.tag == C + "iq"] == []


async def test_disable():
    async with Harness(modules=("cloud_notify",)) as h:
        app = await h.client(APP)
        alice = await h.client("alice@example.com/phone", available=True)
        await alice.iq("set", enable("n1"))
        await alice.iq("set", enable("n2"))
        assert (await alice.iq("set", f"<disable xmlns='{ns.PUSH}' jid='{APP}' node='n1'/>")).get("type") == "result"
        await alice.disconnect()
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(chat("x"))
        assert [notification(e)[0] for e in app.received if e.tag == C + "iq"] == ["n2"]


async def test_only_the_account_itself_and_bad_requests():
    async with Harness(modules=("cloud_notify",)) as h:
        alice = await h.client("alice@example.com/phone")
        bob = await h.client("bob@example.com/pc")
        reply = await bob.iq("set", enable(), to="alice@example.com")
        assert reply.get("type") == "error" and reply.find(f"{C}error/{{{ns.STANZAS_ERR}}}forbidden") is not None
        reply = await alice.iq("set", f"<enable xmlns='{ns.PUSH}' jid='{APP}'/>")
        assert reply.find(f"{C}error/{{{ns.STANZAS_ERR}}}bad-request") is not None


async def test_registration_limit():
    async with Harness(modules=("cloud_notify",), host_extra="push_max_registrations = 1\n") as h:
        alice = await h.client("alice@example.com/phone")
        assert (await alice.iq("set", enable("n1"))).get("type") == "result"
        assert (await alice.iq("set", enable("n1"))).get("type") == "result"   # the same again
        reply = await alice.iq("set", enable("n2"))
        assert reply.find(f"{C}error/{{{ns.STANZAS_ERR}}}policy-violation") is not None


def test_forms():
    x = summary_form(3, "bob@example.com/pc")
    assert serialize(x) == (
        f"<x xmlns='{ns.DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
        f"<value>{ns.PUSH_SUMMARY}</value></field><field var='message-count'><value>3</value></field>"
        "<field var='last-message-sender'><value>bob@example.com/pc</value></field></x>")
    # options stored by earlier versions: the form's text
    legacy = publish_options(SECRET_FORM.replace("'", '"'))
    sub = forms.read(legacy, form_type=ns.PUBSUB_PUBLISH_OPTIONS)
    assert sub.fields == {"secret": ["s3cr3t"]}
    assert publish_options(None) is None
