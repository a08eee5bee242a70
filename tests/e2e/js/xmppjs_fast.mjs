// xmpp.js (npm @xmpp/client) against xmppd: SASL2 with Bind 2, a FAST token asked
// for at the first login and used at the second, a message exchanged each time.
// Usage: node xmppjs_fast.mjs <xmpp.js install dir> <port> <password> <peer JID>
// Prints one JSON line per event; exits 0 when everything happened.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [dir, port, password, peer] = process.argv.slice(2);
const { client, xml } = await import(
  pathToFileURL(path.join(dir, "node_modules/@xmpp/client/index.js")).href);

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const userAgentId = randomUUID();
let token = null;

async function session(round) {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${port}`,
    domain: "xmppd.test",
    username: "alice",
    password,
    resource: "nodejs",
    userAgent: xml("user-agent", { id: userAgentId }, xml("software", {}, "xmpp.js")),
  });
  xmpp.reconnect.stop();
  xmpp.fast.fetchToken = async () => token;
  xmpp.fast.saveToken = async (t) => {
    token = t;
    say({ round, event: "token", mechanism: t.mechanism, expiry: t.expiry });
  };
  xmpp.on("send", (el) => {
    if (el.is("authenticate", "urn:xmpp:sasl:2")) {
      say({ round, event: "authenticate", mechanism: el.attrs.mechanism,
            bind2: !!el.getChild("bind", "urn:xmpp:bind:0"),
            requestToken: !!el.getChild("request-token", "urn:xmpp:fast:0") });
    }
  });
  if (process.env.XMPPJS_DEBUG) {
    xmpp.on("status", (st) => say({ round, status: st }));
    xmpp.on("element", (el) => say({ round, in: el.toString().slice(0, 300) }));
    xmpp.on("send", (el) => say({ round, out: el.toString().slice(0, 300) }));
  }
  xmpp.on("error", (err) => say({ round, event: "error", error: String(err) }));
  const reply = new Promise((resolve) => {
    xmpp.on("stanza", (stanza) => {
      if (stanza.is("message") && stanza.getChildText("body")) resolve(stanza.getChildText("body"));
    });
  });
  const jid = await xmpp.start();
  say({ round, event: "online", jid: jid.toString(), sm: xmpp.streamManagement.enabled ?? null });
  await xmpp.send(xml("message", { to: peer, type: "chat", id: `m${round}` },
                      xml("body", {}, `hello ${round} from xmpp.js`)));
  say({ round, event: "message", body: await reply });
  await xmpp.stop();
}

const timer = setTimeout(() => { say({ event: "timeout" }); process.exit(2); }, 30000);
try {
  await session(1);
  await session(2);
  say({ event: "done" });
  clearTimeout(timer);
} catch (err) {
  say({ event: "failed", error: String(err && err.stack || err) });
  process.exit(1);
}
