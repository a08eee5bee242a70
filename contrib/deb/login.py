"""deb-test's client: log in to the installed xmppd with slixmpp (the package's own
copy, from /usr/lib/xmppd/vendor) over STARTTLS, trusting the certificate the
package generated.

    python3 login.py JID PASSWORD CAFILE [--expect-failure]

Exits 0 when the outcome is the expected one (session started, or the login refused).
"""
import asyncio
import sys

sys.path[0:0] = ["/usr/lib/xmppd/vendor"]
import slixmpp  # noqa: E402


async def main(jid: str, password: str, cafile: str, expect_failure: bool) -> int:
    c = slixmpp.ClientXMPP(jid, password)
    c.ca_certs = cafile
    outcome = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: outcome.done() or outcome.set_result("session"))
    c.add_event_handler("failed_all_auth", lambda _: outcome.done() or outcome.set_result("refused"))
    c.add_event_handler("ssl_invalid_cert", lambda e: outcome.done() or outcome.set_result(f"bad cert {e}"))
    c.connect("127.0.0.1", 5222)
    try:
        got = await asyncio.wait_for(outcome, 30)
    except asyncio.TimeoutError:
        got = "timeout"
    c.disconnect()
    await asyncio.sleep(0.2)
    want = "refused" if expect_failure else "session"
    print(f"login as {jid}: {got}")
    return 0 if got == want else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], "--expect-failure" in sys.argv[4:])))
