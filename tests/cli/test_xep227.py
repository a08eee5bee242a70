"""XEP-0227: ``xmppctl export`` and ``xmppctl import xep227``. The real Debian ejabberd
exports (``ejabberdctl export_piefxis``: a top-level file including one per host, SCRAM
keys) and xmppd imports; an export from xmppd goes into a fresh xmppd and comes out
the same; bad input is reported with file and line; a large file is read as a stream."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.e2e.peputil import options, publish
from tests.e2e.test_mam import query as mam_query
from tests.s2s.external import wait_port

from .conftest import DOMAIN, free_port, run_ctl, run_ctl_here, write_tree

PLUGINS = ("xep_0030", "xep_0054", "xep_0049", "xep_0191", "xep_0004", "xep_0060")
MOOD = "http://jabber.org/protocol/mood"


async def ctl(*args: str, input: str | None = None):
    if input is not None:
        return await asyncio.to_thread(run_ctl, *args, input=input)
    return await asyncio.to_thread(run_ctl_here, *args)


def tree(tmp_path: Path, name: str, cert_files) -> str:
    root = tmp_path / name
    root.mkdir()
    return str(write_tree(root, cert_files))


class Ejabberd:
    """Debian's ejabberd on a free port in a directory of its own, serving DOMAIN;
    administered as ejabberdctl does it (``ejabberd_ctl:process`` over Erlang RPC:
    ejabberdctl itself would switch to the ejabberd user, who cannot read pytest's
    directories)."""

    def __init__(self, base: Path, cert_files: dict):
        self.base = base
        base.mkdir()
        self.port = free_port()
        self.node = f"ejx{self.port}@localhost"
        self.cert_files = cert_files
        self.proc = None

    def env(self) -> dict:
        return dict(os.environ, EJABBERD_CONFIG_PATH=str(self.base / "ejabberd.yml"),
                    EJABBERD_LOG_PATH=str(self.base / "ejabberd.log"), ERL_LIBS="/usr/lib/x86_64-linux-gnu",
                    HOME=str(self.base), ERL_CRASH_DUMP=str(self.base / "erl_crash.dump"))

    async def start(self) -> None:
        erl = shutil.which("erl")
        if erl is None or not (shutil.which("ejabberdctl") or os.path.exists("/usr/sbin/ejabberdctl")):
            pytest.skip("ejabberd is not installed (apt-get install ejabberd)")
        (self.base / "ejabberd.yml").write_text(textwrap.dedent(f"""
            hosts: ["{DOMAIN}"]
            loglevel: info
            certfiles: ["{self.cert_files["crt"]}", "{self.cert_files["key"]}"]
            listen:
              - port: {self.port}
                ip: "127.0.0.1"
                module: ejabberd_c2s
            auth_method: internal
            auth_password_format: scram
            modules:
              mod_roster: {{}}
              mod_vcard: {{}}
              mod_offline: {{}}
              mod_private: {{}}
              mod_privacy: {{}}
              mod_admin_extra: {{}}
            """))
        (self.base / "spool").mkdir()
        with open(self.base / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                [erl, "-sname", self.node, "-noinput", "-setcookie", "xmppdtest", "-mnesia", "dir",
                 f'"{self.base / "spool"}"', "-s", "ejabberd"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.base, start_new_session=True)
        await wait_port(self.port, self.proc, self.base / "stdout.log", timeout=60)

    async def ctl(self, *commands: tuple[str, ...]) -> None:
        """ejabberdctl commands, run by the node as ejabberdctl runs them (one Erlang
        client for all); each must exit 0."""
        def erl_list(args):
            return "[" + ", ".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in args) + "]"
        calls = "".join(f"R{i} = rpc:call('{self.node}', ejabberd_ctl, process, [{erl_list(c)}]), "
                        for i, c in enumerate(commands))       # one after the other
        results = ", ".join(f"R{i}" for i in range(len(commands)))
        expr = f'{calls}io:format("~n=~p~n", [[{results}]]), halt().'
        proc = await asyncio.create_subprocess_exec(
            shutil.which("erl"), "-sname", f"ctl{free_port()}@localhost", "-hidden", "-noinput",
            "-setcookie", "xmppdtest", "-eval", expr, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=self.env(), cwd=str(self.base))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        text = out.decode(errors="replace")
        assert text.rstrip().endswith("=[" + ",".join("0" for _ in commands) + "]"), \
            f"ejabberdctl {commands}: {text}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.mark.external("ejabberd")
async def test_import_ejabberd_export_piefxis(tmp_path, cert_files, start_daemon):
    from tests.e2e.clients import slix_close, slix_connect
    ej = Ejabberd(tmp_path / "ejabberd", cert_files)
    try:
        await ej.start()
        (tmp_path / "export").mkdir()
        await ej.ctl(
            ("register", "alice", DOMAIN, "alice's ej pw"),
            ("register", "bob", DOMAIN, "bob-pw"),
            # both sides (add_rosteritem writes one roster; a one-sided "both" would be
            # corrected by the first presence probe, RFC 6121 §4.3.2)
            ("add_rosteritem", "alice", DOMAIN, "bob", DOMAIN, "Bobby", "Friends", "both"),
            ("add_rosteritem", "bob", DOMAIN, "alice", DOMAIN, "Alice", "Friends", "both"),
            ("set_vcard", "alice", DOMAIN, "FN", "Alice Ejabberd"),
            ("send_message", "chat", f"alice@{DOMAIN}", f"bob@{DOMAIN}", "", "waiting on ejabberd"),
            ("export_piefxis", str(tmp_path / "export")))
    finally:
        ej.stop()
    files = sorted((tmp_path / "export").iterdir())
    assert len(files) == 2, files                      # the top-level file and the host's
    top = min(files, key=lambda p: len(p.name))
    assert "xi:include" in top.read_text()
    cfg = tree(tmp_path, "xmppd", cert_files)

    r = await ctl("--config", cfg, "import", "xep227", str(top), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{DOMAIN} accounts: 2 to import" in r.stdout
    r = await ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout == ""
    r = await ctl("--config", cfg, "import", "xep227", str(top))
    assert r.returncode == 0, r.stdout + r.stderr
    for line in (f"{DOMAIN} accounts: 2 imported", f"{DOMAIN} roster: 2 imported",
                 f"{DOMAIN} vcard: 1 imported", f"{DOMAIN} offline: 1 imported"):
        assert line in r.stdout, r.stdout
    r = await ctl("--config", cfg, "import", "xep227", str(top))
    assert r.returncode == 0 and "nothing to import: 6 unchanged" in r.stdout, r.stdout

    d = start_daemon(Path(cfg)).wait_ready()
    a = await slix_connect(d, f"alice@{DOMAIN}", "alice's ej pw", plugins=PLUGINS)
    try:
        items = (await a.get_roster(timeout=10))["roster"]["items"]
        assert items[f"bob@{DOMAIN}"]["name"] == "Bobby"
        assert items[f"bob@{DOMAIN}"]["subscription"] == "both"
        assert list(items[f"bob@{DOMAIN}"]["groups"]) == ["Friends"]
        vc = await a.plugin["xep_0054"].get_vcard(local=False, cached=False, timeout=10)
        assert vc["vcard_temp"]["FN"] == "Alice Ejabberd"
    finally:
        await slix_close(a)
    b = await slix_connect(d, f"bob@{DOMAIN}", "bob-pw")
    try:
        msg = await b.next_message()
        assert msg["body"] == "waiting on ejabberd" and msg["from"].bare == f"alice@{DOMAIN}"
    finally:
        await slix_close(b)


async def test_round_trip(tmp_path, cert_files, start_daemon):
    """Export from one xmppd, import into a fresh one: the same accounts and data
    (and the second server's export is the same file)."""
    from tests.e2e.clients import slix_close, slix_connect
    cfg = tree(tmp_path, "one", cert_files)
    for user, pw in (("alice", "alice pw"), ("bob", "bob pw")):
        r = await ctl("--config", cfg, "adduser", f"{user}@{DOMAIN}", "--password-stdin", input=pw + "\n")
        assert r.returncode == 0, r.stderr
    d = start_daemon(Path(cfg)).wait_ready()
    a = await slix_connect(d, f"alice@{DOMAIN}", "alice pw", plugins=PLUGINS)
    try:
        await a.update_roster(f"bob@{DOMAIN}", name="Bob", groups=["Friends"])
        vc = a.plugin["xep_0054"].make_vcard()
        vc["FN"] = "Alice Round"
        await a.plugin["xep_0054"].publish_vcard(vc, timeout=10)
        await a.plugin["xep_0049"].store(
            ET.fromstring("<prefs xmlns='urn:example:prefs'><color>green</color></prefs>"), timeout=10)
        await a.plugin["xep_0191"].block([f"spam@{DOMAIN}"], timeout=10)
        await publish(a, MOOD, f"<mood xmlns='{MOOD}'><happy/></mood>", id="m1")
        for n in ("1", "2"):
            await publish(a, "urn:example:notes", f"<note xmlns='urn:example'>{n}</note>", id=n,
                          opts=options(access_model="open", max_items="5"))
        a.send_message(mto=f"bob@{DOMAIN}", mbody="see you on the other side", mtype="chat")
        await a.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)
    finally:
        await slix_close(a)
    d.stop()
    dump = tmp_path / "dump.xml"
    r = await ctl("--config", cfg, "export", str(dump))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{DOMAIN}: 2 account(s)" in r.stdout
    assert dump.stat().st_mode & 0o077 == 0      # it holds the SCRAM keys
    text = dump.read_text()
    assert "alice pw" not in text and "scram-credentials" in text

    cfg2 = tree(tmp_path, "two", cert_files)
    r = await ctl("--config", cfg2, "import", "xep227", str(dump))
    assert r.returncode == 0, r.stdout + r.stderr
    for line in (f"{DOMAIN} accounts: 2 imported", f"{DOMAIN} roster: 1 imported",
                 f"{DOMAIN} vcard: 1 imported", f"{DOMAIN} private: 1 imported",
                 f"{DOMAIN} offline: 1 imported", f"{DOMAIN} blocklist: 1 imported",
                 # mood, notes, and the vCard4 node the vCard is kept in step with
                 f"{DOMAIN} pep: 3 imported", f"{DOMAIN} archive: 2 imported"):
        assert line in r.stdout, r.stdout
    r = await ctl("--config", cfg2, "import", "xep227", str(dump))
    assert r.returncode == 0 and "nothing to import" in r.stdout, r.stdout
    dump2 = tmp_path / "dump2.xml"
    r = await ctl("--config", cfg2, "export", str(dump2))
    assert r.returncode == 0, r.stdout + r.stderr
    assert dump2.read_text() == text

    d2 = start_daemon(Path(cfg2)).wait_ready()
    a = await slix_connect(d2, f"alice@{DOMAIN}", "alice pw", plugins=PLUGINS)
    try:
        items = (await a.get_roster(timeout=10))["roster"]["items"]
        assert items[f"bob@{DOMAIN}"]["name"] == "Bob"
        vc = await a.plugin["xep_0054"].get_vcard(local=False, cached=False, timeout=10)
        assert vc["vcard_temp"]["FN"] == "Alice Round"
        iq = a.make_iq_get()
        iq["private"].xml.append(ET.Element("{urn:example:prefs}prefs"))
        got = await iq.send(timeout=10)
        assert got["private"].xml.findtext("{urn:example:prefs}prefs/{urn:example:prefs}color") == "green"
        blocked = await a.plugin["xep_0191"].get_blocked_jids(timeout=10)
        assert {str(j) for j in blocked} == {f"spam@{DOMAIN}"}
        got = await a.plugin["xep_0060"].get_items(None, "urn:example:notes", timeout=10)
        assert [i["id"] for i in list(got["pubsub"]["items"])] == ["1", "2"]
        conf = await a.plugin["xep_0060"].get_node_config(None, "urn:example:notes", timeout=10)
        values = conf["pubsub_owner"]["configure"]["form"].get_values()
        assert values["pubsub#access_model"] == "open" and values["pubsub#max_items"] == "5"
        bodies, _, _ = await mam_query(a, with_jid=f"bob@{DOMAIN}")
        assert bodies == ["see you on the other side"]
    finally:
        await slix_close(a)
    b = await slix_connect(d2, f"bob@{DOMAIN}", "bob pw")
    try:
        msg = await b.next_message()
        assert msg["body"] == "see you on the other side"
    finally:
        await slix_close(b)


def dump_text(users: str, host: str = DOMAIN) -> str:
    return (f"<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='{host}'>\n"
            f"{users}</host>\n</server-data>\n")


def test_bad_input(tmp_path, cert_files):
    ctl = run_ctl_here
    cfg = tree(tmp_path, "xmppd", cert_files)
    good = "<user name='carol' password='carol pw'><vCard xmlns='vcard-temp'><FN>Carol</FN></vCard></user>\n"
    # a user with bad data is skipped whole; the others are imported
    f = tmp_path / "bad-user.xml"
    f.write_text(dump_text(
        good +
        "<user name='dave' password='dave pw'>\n"
        "  <vCard xmlns='vcard-temp'><FN>Dave</FN></vCard>\n"
        "  <query xmlns='jabber:iq:roster'><item jid='not a jid@@' subscription='both'/></query>\n"
        "</user>\n"
        "<user name='erin'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
        "<iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>short</server-key>"
        "<stored-key>c2hvcnQ=</stored-key></scram-credentials></user>\n"
        "<user name='frank'/>\n"))
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"error: {f}:5: user 'dave': roster item 'not a jid@@' is not a JID (user skipped)" in r.stdout, r.stdout
    assert f"error: {f}:9: user 'erin': " in r.stdout and "base64" in r.stdout
    assert f"error: {f}:10: user 'frank': no password and no SCRAM credentials" in r.stdout
    assert f"{DOMAIN} accounts: 1 imported" in r.stdout and f"{DOMAIN} vcard: 1 imported" in r.stdout
    r = ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout.split() == [f"carol@{DOMAIN}"]          # nothing of dave, erin, frank

    # malformed XML: file and line; the users before it are imported
    f = tmp_path / "broken.xml"
    f.write_text(dump_text("<user name='gina' password='g pw'/>\n<user name='hank' password='h'>\n"
                           "<vCard xmlns='vcard-temp'><FN>Hank</vCard>\n</user>\n"))
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1
    assert f"error: {f}:6: malformed XML:" in r.stdout, r.stdout
    r = ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout.split() == [f"carol@{DOMAIN}", f"gina@{DOMAIN}"]

    # a host this xmppd does not serve
    f = tmp_path / "other.xml"
    f.write_text(dump_text("<user name='ivan' password='i pw'/>\n", host="elsewhere.example"))
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1
    assert f"error: {f}:3: host 'elsewhere.example' is not an enabled VirtualHost" in r.stdout, r.stdout

    # not XEP-0227; an include that is missing; no file at all
    f = tmp_path / "html.xml"
    f.write_text("<html><body/></html>\n")
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1 and f"error: {f}:1: <html/> in no namespace is not XEP-0227 data" in r.stdout
    f = tmp_path / "top.xml"
    f.write_text("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
                 "<xi:include href='gone.xml'/></server-data>")
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1 and f"error: {tmp_path / 'gone.xml'}: cannot read" in r.stdout, r.stdout
    r = ctl("--config", cfg, "import", "xep227", str(tmp_path / "nothing.xml"))
    assert r.returncode == 1 and "nothing.xml: no such file" in r.stderr

    # a DTD (entities) is refused
    f = tmp_path / "entity.xml"
    f.write_text("<!DOCTYPE server-data [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n" +
                 dump_text("<user name='jack' password='j pw'><vCard xmlns='vcard-temp'><FN>&x;</FN></vCard></user>\n")
                 .split("\n", 1)[1])
    r = ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 1 and f"error: {f}:1: a DOCTYPE (DTD, entities) has no place" in r.stdout, r.stdout
    r = ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout.split() == [f"carol@{DOMAIN}", f"gina@{DOMAIN}"]


def test_large_file_is_streamed(tmp_path):
    """A dump of 20,000 users (~14 MB) is read with bounded memory: the reader's peak
    RSS grows by far less than the file (a tree of it would take several times its
    size), and the parsed tree never holds more than the current user."""
    f = tmp_path / "big.xml"
    user = ("<user name='u{n}' password='pw{n}'><query xmlns='jabber:iq:roster'>" +
            "".join(f"<item jid='c{i}@example.org' name='Contact {i}' subscription='both'><group>G</group></item>"
                    for i in range(5)) +
            "</query><vCard xmlns='vcard-temp'><FN>User {n}</FN><DESC>" + "x" * 200 + "</DESC></vCard></user>\n")
    with open(f, "w") as out:
        out.write("<server-data xmlns='urn:xmpp:pie:0'><host jid='big.example'>\n")
        for n in range(20000):
            out.write(user.format(n=n))
        out.write("</host></server-data>\n")
    size = f.stat().st_size
    assert size > 12_000_000
    code = textwrap.dedent(f"""
        import resource, sys
        import lxml.etree  # (loaded before the first measure: the library is not the data)
        from xmppd.cli.xep227 import read_dump
        from pathlib import Path
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        users = 0
        for ev in read_dump(Path({str(f)!r})):
            if ev[0] == "user":
                users += 1
                assert ev[2].get("name") == f"u{{users - 1}}"
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(users, (after - before) * 1024)
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    users, growth = map(int, r.stdout.split())
    assert users == 20000
    assert growth < size / 4, (growth, size)


def test_progress_on_a_terminal(tmp_path):
    from xmppd.cli.xep227 import Progress, read_dump

    class Tty:
        def __init__(self, tty):
            self.tty, self.text = tty, ""

        def isatty(self):
            return self.tty

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    f = tmp_path / "d.xml"
    f.write_text(dump_text("<user name='a' password='p'/>\n"))
    for tty in (True, False):
        out = Tty(tty)
        p = Progress(out)
        assert [e[0] for e in read_dump(f, p)] == ["host", "user", "end-host"]
        p.done()
        if tty:
            assert "reading d.xml: 0.0 MB of 0.0 MB (100%)" in out.text and out.text.endswith("\r\x1b[K")
        else:
            assert out.text == ""


async def test_credentials_and_privacy_lists(tmp_path, cert_files, start_daemon):
    """What XEP-0227 files carry besides ejabberd's SCRAM-SHA-1 keys: SCRAM-SHA-256 keys
    (with SCRAM-SHA-1 ones sharing their salt), a plaintext password; ejabberd's block
    list (the privacy list "Blocked contacts") comes over, other privacy lists are
    named as not imported."""
    from tests.e2e.clients import slix_close, slix_connect
    from xmppd.core.credentials import make_credentials

    def scram(pw: str, mechs=("SCRAM-SHA-1", "SCRAM-SHA-256")) -> str:
        c = make_credentials(pw, 4096)
        out = ""
        for mech in mechs:
            keys = c[mech.lower()]
            out += (f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mech}'>"
                    f"<iter-count>{c['iterations']}</iter-count><salt>{c['salt']}</salt>"
                    f"<server-key>{keys['server_key']}</server-key><stored-key>{keys['stored_key']}</stored-key>"
                    "</scram-credentials>")
        return out

    f = tmp_path / "creds.xml"
    f.write_text(dump_text(
        f"<user name='kim'>{scram('kim pw')}"
        "<query xmlns='jabber:iq:privacy'><list name='Blocked contacts'>"
        "<item type='jid' value='spam@example.org' action='deny' order='1'/></list>"
        "<list name='work'><item action='allow' order='1'/></list></query></user>\n"
        f"<user name='lou'>{scram('lou pw', ('SCRAM-SHA-256',))}</user>\n"
        "<user name='max' password='max pw'/>\n"))
    cfg = tree(tmp_path, "xmppd", cert_files)
    r = await ctl("--config", cfg, "import", "xep227", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{DOMAIN} accounts: 3 imported" in r.stdout and f"{DOMAIN} blocklist: 1 imported" in r.stdout
    assert f"{DOMAIN}: not imported: privacy list of 1 user(s)" in r.stdout, r.stdout
    d = start_daemon(Path(cfg)).wait_ready()
    for user, pw in (("kim", "kim pw"), ("lou", "lou pw"), ("max", "max pw")):
        c = await slix_connect(d, f"{user}@{DOMAIN}", pw, plugins=PLUGINS)
        try:
            if user == "kim":
                blocked = await c.plugin["xep_0191"].get_blocked_jids(timeout=10)
                assert {str(j) for j in blocked} == {"spam@example.org"}
        finally:
            await slix_close(c)
