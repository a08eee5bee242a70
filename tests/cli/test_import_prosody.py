"""``xmppctl import prosody``: the real Debian Prosody 0.12 writes the data (accounts
registered with prosodyctl, ``internal_hashed``; a slixmpp client sets a roster item,
its vCard, private XML, a block and sends an offline message), xmppctl imports it,
and the real xmppd serves it to slixmpp clients logging in with the old passwords."""
from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.s2s.external import wait_port

from tests.e2e.peputil import options, publish
from tests.e2e.test_mam import query as mam_query

from .conftest import DOMAIN, free_port, run_ctl, run_ctl_here, write_tree

pytestmark = pytest.mark.external("prosody")

HOSTDIR = DOMAIN.replace(".", "%2e")
PLUGINS = ("xep_0030", "xep_0054", "xep_0049", "xep_0191", "xep_0004", "xep_0060")
MOOD = "http://jabber.org/protocol/mood"


def need(program: str) -> str:
    path = shutil.which(program) or (f"/usr/bin/{program}" if os.path.exists(f"/usr/bin/{program}") else None)
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install prosody)")
    return path


class Prosody:
    def __init__(self, base: Path, cert_files: dict, vcard: str = "vcard", sql: bool = False):
        self.base = base
        base.mkdir()
        (base / "certs").mkdir()
        (base / "data").mkdir()
        storage = ('storage = "sql"\nsql = { driver = "SQLite3", database = "prosody.sqlite" }'
                   if sql else 'storage = "internal"')
        self.port = free_port()
        self.cafile = cert_files["ca"]
        self.tls_port = None
        self.cfg = base / "prosody.cfg.lua"
        self.cfg.write_text(textwrap.dedent(f"""\
            run_as_root = true
            daemonize = false
            pidfile = "{base}/prosody.pid"
            data_path = "{base}/data"
            log = {{ {{ levels = {{ min = "warn" }}, to = "console" }} }}
            interfaces = {{ "127.0.0.1" }}
            c2s_ports = {{ {self.port} }}
            s2s_ports = {{ }}
            c2s_direct_tls_ports = {{ }}
            http_ports = {{ }}
            https_ports = {{ }}
            authentication = "internal_hashed"
            {storage}
            modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "presence"; "posix";
                                 "{vcard}"; "private"; "offline"; "blocklist"; "pep"; "mam" }}
            c2s_require_encryption = true
            certificates = "{base}/certs"
            VirtualHost "{DOMAIN}"
                ssl = {{ certificate = "{cert_files["crt"]}"; key = "{cert_files["key"]}"; }}
            """))
        self.proc = None

    def register(self, user: str, password: str) -> None:
        r = subprocess.run([need("prosodyctl"), "--config", str(self.cfg), "register", user, DOMAIN,
                            password], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr

    async def start(self) -> None:
        self.out = open(self.base / "prosody.log", "wb")
        self.proc = subprocess.Popen([need("prosody"), "-F", "--config", str(self.cfg)],
                                     stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        await wait_port(self.port, self.proc, self.base / "prosody.log")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.out.close()


@pytest.fixture
def prosody(tmp_path, cert_files):
    p = Prosody(tmp_path / "prosody", cert_files)
    yield p
    p.stop()


async def fill(prosody: Prosody) -> None:
    """What users did on Prosody before the move."""
    from tests.e2e.clients import slix_close, slix_connect
    prosody.register("alice", "alice's old pw")
    prosody.register("bob", "bob-pw")
    await prosody.start()
    a = await slix_connect(prosody, f"alice@{DOMAIN}", "alice's old pw", plugins=PLUGINS)
    try:
        await a.update_roster(f"bob@{DOMAIN}", name="Bob", groups=["Friends", "Work"])
        vc = a.plugin["xep_0054"].make_vcard()
        vc["FN"] = "Alice Liddell"
        vc["NICKNAME"] = "ali"
        await a.plugin["xep_0054"].publish_vcard(vc, timeout=10)
        await a.plugin["xep_0049"].store(
            ET.fromstring("<prefs xmlns='urn:example:prefs'><color>blue</color></prefs>"), timeout=10)
        await a.plugin["xep_0191"].block([f"spam@{DOMAIN}"], timeout=10)
        # PEP: a node with the defaults (mood), one configured with two items
        await publish(a, MOOD, f"<mood xmlns='{MOOD}'><happy/></mood>", id="m1")
        for n, text in ((1, "one"), (2, "two")):
            await publish(a, "urn:example:notes", f"<note xmlns='urn:example'>{text}</note>", id=str(n),
                          opts=options(access_model="open", max_items="10"))
        a.send_message(mto=f"bob@{DOMAIN}", mbody="while you were away", mtype="chat")
        await a.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)   # a round trip: sent
    finally:
        await slix_close(a)
    prosody.stop()


async def check_alice_pep(d) -> None:
    """What fill() published, served by xmppd: to the owner and, on the open node, to
    another account."""
    from tests.e2e.clients import slix_close, slix_connect
    a = await slix_connect(d, f"alice@{DOMAIN}", "alice's old pw", plugins=PLUGINS)
    try:
        got = await a.plugin["xep_0060"].get_items(None, MOOD, timeout=10)
        items = list(got["pubsub"]["items"])
        assert [i["id"] for i in items] == ["m1"]
        assert items[0].xml.find(f"{{{MOOD}}}mood/{{{MOOD}}}happy") is not None
        conf = await a.plugin["xep_0060"].get_node_config(None, "urn:example:notes", timeout=10)
        values = conf["pubsub_owner"]["configure"]["form"].get_values()
        assert values["pubsub#access_model"] == "open" and values["pubsub#max_items"] == "10"
        conf = await a.plugin["xep_0060"].get_node_config(None, MOOD, timeout=10)
        values = conf["pubsub_owner"]["configure"]["form"].get_values()
        assert values["pubsub#access_model"] == "presence" and values["pubsub#max_items"] == "1"
        # the message archive: what alice sent bob while he was away
        bodies, _, _ = await mam_query(a, with_jid=f"bob@{DOMAIN}")
        assert bodies == ["while you were away"]
    finally:
        await slix_close(a)
    b = await slix_connect(d, f"bob@{DOMAIN}", "bob-pw", plugins=PLUGINS)
    try:
        got = await b.plugin["xep_0060"].get_items(f"alice@{DOMAIN}", "urn:example:notes", timeout=10)
        assert [i.xml.findtext("{urn:example}note") for i in list(got["pubsub"]["items"])] == ["one", "two"]
    finally:
        await slix_close(b)


async def ctl(*args: str):
    return await asyncio.to_thread(run_ctl_here, *args)


async def test_import_from_real_prosody(tmp_path, cert_files, prosody, start_daemon):
    from tests.e2e.clients import slix_close, slix_connect
    await fill(prosody)
    data = prosody.base / "data"
    assert (data / HOSTDIR / "accounts" / "alice.dat").exists()
    assert (data / HOSTDIR / "offline" / "bob.list").exists()
    assert (data / HOSTDIR / "pep" / "alice.dat").exists()
    corrupt = data / HOSTDIR / "vcard" / "bob.dat"
    corrupt.write_text('return {\n\t["name"] = "vCard";\n\t["attr"] = { broken\n')
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))

    r = await ctl("--config", cfg, "import", "prosody", str(data), "--dry-run")
    assert r.returncode == 1, r.stdout + r.stderr     # the corrupt file
    assert "dry run: nothing is written" in r.stdout
    assert f"{DOMAIN} accounts: 2 to import" in r.stdout
    assert f"error: {corrupt}: line 3" in r.stdout
    r = await ctl("--config", cfg, "users", DOMAIN)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr   # nothing written

    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert f"error: {corrupt}: line 3" in out and "(skipped)" in out
    for line in (f"{DOMAIN} accounts: 2 imported", f"{DOMAIN} roster: 1 imported",
                 f"{DOMAIN} vcard: 1 imported", f"{DOMAIN} private: 1 imported",
                 f"{DOMAIN} offline: 1 imported", f"{DOMAIN} blocklist: 1 imported",
                 f"{DOMAIN} pep: 2 imported", f"{DOMAIN} archive: 2 imported"):
        assert line in out, out
    r = await ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout.split() == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]

    # again: nothing changes, and it says so
    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert "nothing to import" in r.stdout and " imported," not in r.stdout.replace("0 imported,", ""), r.stdout
    for line in (f"{DOMAIN} accounts: 0 imported, 2 unchanged", f"{DOMAIN} roster: 0 imported, 1 unchanged",
                 f"{DOMAIN} offline: 0 imported, 1 unchanged", f"{DOMAIN} blocklist: 0 imported, 1 unchanged",
                 f"{DOMAIN} pep: 0 imported, 2 unchanged", f"{DOMAIN} archive: 0 imported, 2 unchanged"):
        assert line in r.stdout, r.stdout

    d = start_daemon(Path(cfg)).wait_ready()
    # the running server is not written behind its back
    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert r.returncode == 1 and "xmppd is running" in r.stderr

    a = await slix_connect(d, f"alice@{DOMAIN}", "alice's old pw", plugins=PLUGINS)
    try:
        roster = await a.get_roster(timeout=10)
        items = roster["roster"]["items"]
        assert set(items) == {f"bob@{DOMAIN}"}
        assert items[f"bob@{DOMAIN}"]["name"] == "Bob"
        assert sorted(items[f"bob@{DOMAIN}"]["groups"]) == ["Friends", "Work"]
        vc = await a.plugin["xep_0054"].get_vcard(local=False, cached=False, timeout=10)
        assert vc["vcard_temp"]["FN"] == "Alice Liddell"
        assert vc["vcard_temp"]["NICKNAME"] in ("ali", ["ali"])
        iq = a.make_iq_get()
        iq["private"].xml.append(ET.Element("{urn:example:prefs}prefs"))
        got = await iq.send(timeout=10)
        prefs = got["private"].xml.find("{urn:example:prefs}prefs")
        assert prefs.findtext("{urn:example:prefs}color") == "blue"
        blocked = await a.plugin["xep_0191"].get_blocked_jids(timeout=10)
        assert {str(j) for j in blocked} == {f"spam@{DOMAIN}"}
    finally:
        await slix_close(a)
    # bob: the message that waited on Prosody, with its old password
    b = await slix_connect(d, f"bob@{DOMAIN}", "bob-pw")
    try:
        msg = await b.next_message()
        assert msg["body"] == "while you were away"
        assert msg["from"].bare == f"alice@{DOMAIN}"
        assert msg.xml.find("{urn:xmpp:delay}delay").get("stamp")
    finally:
        await slix_close(b)
    await check_alice_pep(d)


async def test_vcard4_of_vcard_legacy(tmp_path, cert_files, start_daemon):
    """Debian's Prosody enables vcard_legacy: a vcard-temp set is kept as vCard4 and
    an avatar in PEP; the import turns them back into the vcard-temp it showed."""
    from tests.e2e.clients import slix_close, slix_connect
    prosody = Prosody(tmp_path / "prosody", cert_files, vcard="vcard_legacy")
    try:
        prosody.register("dave", "d-pw")
        await prosody.start()
        c = await slix_connect(prosody, f"dave@{DOMAIN}", "d-pw", plugins=PLUGINS)
        try:
            vc = c.plugin["xep_0054"].make_vcard()
            vc["FN"] = "Dave Bowman"
            vc["NICKNAME"] = "dave"
            vc["EMAIL"]["USERID"] = "dave@discovery.example"
            vc["PHOTO"]["TYPE"] = "image/png"
            vc["PHOTO"]["BINVAL"] = b"\x89PNG not really"
            await c.plugin["xep_0054"].publish_vcard(vc, timeout=10)
        finally:
            await slix_close(c)
        prosody.stop()
    finally:
        prosody.stop()
    data = prosody.base / "data"
    assert not (data / HOSTDIR / "vcard").exists()
    assert (data / HOSTDIR / "pep_urn%3axmpp%3avcard4" / "dave.list").exists()
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))
    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert r.returncode == 0 and f"{DOMAIN} vcard: 1 imported" in r.stdout, r.stdout + r.stderr
    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert f"{DOMAIN} vcard: 0 imported, 1 unchanged" in r.stdout, r.stdout
    d = start_daemon(Path(cfg)).wait_ready()
    c = await slix_connect(d, f"dave@{DOMAIN}", "d-pw", plugins=PLUGINS)
    try:
        vc = (await c.plugin["xep_0054"].get_vcard(local=False, cached=False, timeout=10))["vcard_temp"]
        assert vc["FN"] == "Dave Bowman"
        assert vc["NICKNAME"] in ("dave", ["dave"])
        assert vc.xml.findtext("{vcard-temp}EMAIL/{vcard-temp}USERID") == "dave@discovery.example"
        assert vc["PHOTO"]["TYPE"] == "image/png"
        assert vc["PHOTO"]["BINVAL"] == b"\x89PNG not really"
    finally:
        await slix_close(c)


async def test_mechanisms_after_import(tmp_path, cert_files, prosody, start_daemon):
    """The imported account has SCRAM-SHA-1 keys only: SCRAM-SHA-1(-PLUS) and PLAIN
    (checked against those keys) take the old password; the host offers no
    SCRAM-SHA-256 while it has such an account (a client that picks the strongest
    mechanism offered must not be locked out), until a password change stores both
    hashes."""
    from tests.e2e.test_sasl import end_point, mechanisms, scram, tls_stream
    prosody.register("carol", "c-old")
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))
    r = await ctl("--config", cfg, "import", "prosody", str(prosody.base / "data"))
    assert r.returncode == 0, r.stdout + r.stderr
    d = start_daemon(Path(cfg)).wait_ready()

    async def attempt(mech: str, password: str) -> str:
        raw, _ = await tls_stream(d)
        try:
            if mech == "PLAIN":
                payload = base64.b64encode(f"\0carol\0{password}".encode()).decode()
                raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                         f"{payload}</auth>")
                out = await raw.read_until(b">", timeout=10)
                if "<failure" in out:
                    out += await raw.read_until(b"</failure>", timeout=10)
                return out
            cb = ("tls-server-end-point", end_point(raw)) if mech.endswith("-PLUS") else None
            return await scram(raw, mech, "carol", password, cb)
        finally:
            raw.close()

    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"):
        assert "<success" in await attempt(mech, "c-old"), mech
        assert "<not-authorized" in await attempt(mech, "wrong"), mech
    # the host has an account without SCRAM-SHA-256 keys: SCRAM-SHA-256 is not offered
    raw, feats = await tls_stream(d)
    raw.close()
    assert mechanisms(feats) == ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]
    assert "<invalid-mechanism" in await attempt("SCRAM-SHA-256", "c-old")

    # a password change stores both hashes; the running server sees it at reload
    r = await asyncio.to_thread(run_ctl, "--config", cfg, "passwd", f"carol@{DOMAIN}",
                                "--password-stdin", input="c-new\n")
    assert r.returncode == 0, r.stderr
    r = await asyncio.to_thread(run_ctl, "--config", cfg, "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    raw, feats = await tls_stream(d)
    raw.close()
    assert mechanisms(feats) == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                 "SCRAM-SHA-1", "PLAIN"]
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "PLAIN"):
        assert "<success" in await attempt(mech, "c-new"), mech


async def test_import_from_real_prosody_sql(tmp_path, cert_files, start_daemon):
    """The same move from Prosody's SQL storage (SQLite, Debian's lua-dbi-sqlite3):
    xmppctl finds prosody.sqlite in the data path."""
    import sqlite3
    from tests.e2e.clients import slix_close, slix_connect
    if not any(Path(p, "dbd", "sqlite3.so").exists() for p in Path("/usr/lib").glob("*/lua/5.4")):
        pytest.skip("lua-dbi-sqlite3 is not installed (apt-get install lua-dbi-sqlite3)")
    prosody = Prosody(tmp_path / "prosody", cert_files, sql=True)
    try:
        await fill(prosody)
    finally:
        prosody.stop()
    data = prosody.base / "data"
    db = data / "prosody.sqlite"
    assert db.is_file() and not (data / HOSTDIR).exists()
    with sqlite3.connect(db) as c:      # carol's vCard is broken: she is reported, the rest imported
        c.execute("INSERT INTO prosody VALUES (?, 'carol', 'accounts', 'password', 'string', 'c-pw')", (DOMAIN,))
        c.execute("INSERT INTO prosody VALUES (?, 'carol', 'vcard', '', 'json', '[{broken')", (DOMAIN,))
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))
    r = await ctl("--config", cfg, "import", "prosody", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert f"error: {db}: vcard of carol: " in out and "bad JSON" in out, out
    for line in (f"{DOMAIN} accounts: 3 imported", f"{DOMAIN} roster: 1 imported",
                 f"{DOMAIN} vcard: 1 imported, 0 unchanged, 1 skipped", f"{DOMAIN} private: 1 imported",
                 f"{DOMAIN} offline: 1 imported", f"{DOMAIN} blocklist: 1 imported",
                 f"{DOMAIN} pep: 2 imported", f"{DOMAIN} archive: 2 imported"):
        assert line in out, out
    r = await ctl("--config", cfg, "import", "prosody", "--sql", str(db))
    assert "nothing to import" in r.stdout and f"{DOMAIN} pep: 0 imported, 2 unchanged" in r.stdout, r.stdout
    r = await ctl("--config", cfg, "import", "prosody", str(tmp_path / "nowhere.sqlite"))
    assert r.returncode == 1 and "nowhere.sqlite" in r.stderr

    d = start_daemon(Path(cfg)).wait_ready()
    a = await slix_connect(d, f"alice@{DOMAIN}", "alice's old pw", plugins=PLUGINS)
    try:
        items = (await a.get_roster(timeout=10))["roster"]["items"]
        assert items[f"bob@{DOMAIN}"]["name"] == "Bob"
        assert sorted(items[f"bob@{DOMAIN}"]["groups"]) == ["Friends", "Work"]
        vc = await a.plugin["xep_0054"].get_vcard(local=False, cached=False, timeout=10)
        assert vc["vcard_temp"]["FN"] == "Alice Liddell"
        iq = a.make_iq_get()
        iq["private"].xml.append(ET.Element("{urn:example:prefs}prefs"))
        got = await iq.send(timeout=10)
        assert got["private"].xml.findtext("{urn:example:prefs}prefs/{urn:example:prefs}color") == "blue"
        blocked = await a.plugin["xep_0191"].get_blocked_jids(timeout=10)
        assert {str(j) for j in blocked} == {f"spam@{DOMAIN}"}
    finally:
        await slix_close(a)
    b = await slix_connect(d, f"bob@{DOMAIN}", "bob-pw")
    try:
        msg = await b.next_message()
        assert msg["body"] == "while you were away" and msg["from"].bare == f"alice@{DOMAIN}"
    finally:
        await slix_close(b)
    c = await slix_connect(d, f"carol@{DOMAIN}", "c-pw")
    await slix_close(c)
    await check_alice_pep(d)


async def test_flat_files_or_sql(tmp_path, cert_files):
    """A data path with both Prosody's flat files and prosody.sqlite is ambiguous:
    xmppctl asks which (--internal, --sql); a database that is not Prosody's is refused."""
    import sqlite3
    data = tmp_path / "prosody"
    (data / HOSTDIR / "accounts").mkdir(parents=True)
    (data / HOSTDIR / "accounts" / "zoe.dat").write_text('return {\n\t["password"] = "zoe pw";\n};\n')
    with sqlite3.connect(data / "prosody.sqlite") as c:
        c.execute('CREATE TABLE "prosody" ("host" TEXT, "user" TEXT, "store" TEXT, "key" TEXT, '
                  '"type" TEXT, "value" TEXT)')
        c.execute("INSERT INTO prosody VALUES (?, 'yan', 'accounts', 'password', 'string', 'yan pw')", (DOMAIN,))
    with sqlite3.connect(tmp_path / "other.sqlite") as c:
        c.execute("CREATE TABLE t (x)")
    xroot = tmp_path / "xmppd"
    xroot.mkdir()
    cfg = str(write_tree(xroot, cert_files))
    r = await ctl("--config", cfg, "import", "prosody", str(data), "--dry-run")
    assert r.returncode == 1 and "--internal" in r.stderr and "--sql prosody.sqlite" in r.stderr, r.stderr
    r = await ctl("--config", cfg, "import", "prosody", str(data), "--internal", "--dry-run")
    assert r.returncode == 0 and f"{DOMAIN} accounts: 1 to import" in r.stdout, r.stdout + r.stderr
    r = await ctl("--config", cfg, "import", "prosody", str(data), "--sql", "prosody.sqlite")
    assert r.returncode == 0 and f"{DOMAIN} accounts: 1 imported" in r.stdout, r.stdout + r.stderr
    r = await ctl("--config", cfg, "users", DOMAIN)
    assert r.stdout.split() == [f"yan@{DOMAIN}"]
    r = await ctl("--config", cfg, "import", "prosody", "--sql", str(tmp_path / "other.sqlite"))
    assert r.returncode == 1 and "not a Prosody database" in r.stderr, r.stderr
