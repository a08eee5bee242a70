"""``xmppctl``, run as the admin runs it: the real program in a subprocess (exit
statuses, standard input, a terminal, argument order); the follow-up commands of a
test and the repetitive ``enable``/``disable`` and ``check config`` cases run it
in-process (``run_ctl_here``: the same code, without an interpreter start-up each)."""
from __future__ import annotations

import asyncio
import os
import re
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from .conftest import DOMAIN, program, run_ctl, run_ctl_here, write_tree

PROSODY_CFG = Path("/etc/prosody/prosody.cfg.lua")


def add(ctl, jid, password="s3cret pass"):
    return ctl("adduser", jid, "--password-stdin", input=password + "\n")


# -- accounts -------------------------------------------------------------------

def test_adduser_users_passwd_deluser(ctl):
    r = add(ctl, f"alice@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    assert f"created alice@{DOMAIN}" in r.stdout
    assert add(ctl, f"Bob@{DOMAIN}").returncode == 0          # nodeprep: stored as bob
    r = ctl("users", DOMAIN)
    assert r.returncode == 0
    assert r.stdout.split() == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
    r = ctl("passwd", f"alice@{DOMAIN}", "--password-stdin", input="new one\n")
    assert r.returncode == 0 and "changed" in r.stdout
    r = ctl("deluser", f"alice@{DOMAIN}")
    assert r.returncode == 0 and f"deleted alice@{DOMAIN}" in r.stdout
    assert ctl("users", DOMAIN).stdout.split() == [f"bob@{DOMAIN}"]


def test_config_option_before_or_after_the_command(cfg):
    r = run_ctl("adduser", f"carol@{DOMAIN}", "--password-stdin", "--config", str(cfg),
                input="pw\n")
    assert r.returncode == 0, r.stderr
    r = run_ctl("--config", str(cfg), "users", DOMAIN)
    assert r.stdout.split() == [f"carol@{DOMAIN}"]
    r = run_ctl("users", "-c", str(cfg), DOMAIN)
    assert r.stdout.split() == [f"carol@{DOMAIN}"]


def test_the_password_is_not_stored(ctl, cfg):
    assert add(ctl, f"alice@{DOMAIN}", "Very-Distinct-Secret").returncode == 0
    db = cfg.parent / "var" / "xmppd.sqlite"
    assert db.exists()
    for f in db.parent.iterdir():
        assert b"Very-Distinct-Secret" not in f.read_bytes()


@pytest.mark.parametrize("jid, message", [
    ("a b@" + DOMAIN, "invalid JID 'a b@xmppd.test'"),
    ("@" + DOMAIN, "invalid JID '@xmppd.test'"),
    ("user@", "invalid JID 'user@'"),
    (DOMAIN, "invalid JID 'xmppd.test': expected user@domain"),
    (f"user@{DOMAIN}/res", "invalid JID"),
])
def test_adduser_invalid_jid(ctl, jid, message):
    r = add(ctl, jid)
    assert r.returncode == 1
    assert r.stderr.startswith("xmppctl: ")
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_disabled_and_component_domains(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files, extra='VirtualHost "off.test"\n    enabled = false\n'
                     'Component "conference.xmppd.test" "muc"\n')
    for args, message in [
        (("adduser", "a@nowhere.test", "--password-stdin"), "unknown domain 'nowhere.test'"),
        (("users", "nowhere.test"), "unknown domain 'nowhere.test'"),
        (("adduser", "a@off.test", "--password-stdin"), "domain 'off.test' is disabled"),
        (("users", "off.test"), "domain 'off.test' is disabled"),
        (("adduser", "a@conference.xmppd.test", "--password-stdin"),
         "'conference.xmppd.test' is a Component, not a VirtualHost"),
    ]:
        r = run_ctl("--config", str(cfg), *args, input="pw\n")
        assert r.returncode == 1, args
        assert message in r.stderr, (args, r.stderr)
    r = run_ctl("--config", str(cfg), "adduser", "a@off.test", "--password-stdin", input="pw\n")
    assert "enabled = false at" in r.stderr and "xmppd.cfg.lua:" in r.stderr


def test_user_exists_and_user_missing(ctl):
    assert add(ctl, f"alice@{DOMAIN}").returncode == 0
    r = add(ctl, f"alice@{DOMAIN}")
    assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: user alice@{DOMAIN} already exists")
    for args in (("deluser", f"ghost@{DOMAIN}"),
                 ("passwd", f"ghost@{DOMAIN}", "--password-stdin")):
        r = ctl(*args, input="pw\n")
        assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: user ghost@{DOMAIN} does not exist")


@pytest.mark.parametrize("password, message", [
    ("", "empty password"),
    ("bell\x07char", "password refused by SASLprep"),
])
def test_refused_passwords(ctl, password, message):
    r = add(ctl, f"alice@{DOMAIN}", password)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr
    assert ctl("users", DOMAIN).stdout == ""


def test_no_terminal_and_no_password_stdin(ctl):
    r = ctl("adduser", f"alice@{DOMAIN}", input="")
    assert r.returncode == 1
    assert "use --password-stdin" in r.stderr


# -- prompts on a terminal ---------------------------------------------------------

def run_in_pty(argv: list[str], answers: list[tuple[str, str]], timeout: float = 30) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal (its controlling tty, as getpass wants);
    for each ``(prompt, reply)`` wait for the prompt and type the reply.
    Returns (exit code, everything the program wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0].encode() in out:
                os.write(fd, pending.pop(0)[1].encode() + b"\r")
                out += b"\n<typed>\n"
                continue
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def ctl_argv(cfg, *args) -> list[str]:
    return program("xmppctl") + ["--config", str(cfg), *args]


def test_adduser_prompts_twice_on_a_terminal(cfg, ctl):
    code, out = run_in_pty(ctl_argv(cfg, "adduser", f"alice@{DOMAIN}"),
                           [("Enter new password:", "tty pass"), ("Retype new password:", "tty pass")])
    assert code == 0, out
    assert out.count("password:") == 2
    assert "tty pass" not in out      # not echoed
    assert f"created alice@{DOMAIN}" in out
    assert ctl("users", DOMAIN).stdout.split() == [f"alice@{DOMAIN}"]


def test_adduser_prompts_mismatch(cfg, ctl):
    code, out = run_in_pty(ctl_argv(cfg, "adduser", f"alice@{DOMAIN}"),
                           [("Enter new password:", "one"), ("Retype new password:", "two")])
    assert code == 1
    assert "passwords do not match" in out
    assert ctl("users", DOMAIN).stdout == ""


def test_passwd_prompts_on_a_terminal(cfg, ctl):
    assert add(ctl, f"alice@{DOMAIN}").returncode == 0
    code, out = run_in_pty(ctl_argv(cfg, "passwd", f"alice@{DOMAIN}"),
                           [("Enter new password:", "x2"), ("Retype new password:", "x2")])
    assert code == 0, out
    assert "password of alice@xmppd.test changed" in out


# -- deluser: the account can no longer log in ---------------------------------------

async def test_deluser_then_login_fails(cfg, ctl, start_daemon):
    from tests.e2e.clients import AuthFailed, slix_close, slix_connect
    assert add(ctl, f"alice@{DOMAIN}", "pw").returncode == 0
    d = start_daemon(cfg).wait_ready()
    c = await slix_connect(d, f"alice@{DOMAIN}", "pw", send_presence=False)
    await slix_close(c)
    r = await asyncio.to_thread(ctl, "deluser", f"alice@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    with pytest.raises(AuthFailed):
        await slix_connect(d, f"alice@{DOMAIN}", "pw", send_presence=False)


# -- check config -----------------------------------------------------------------

def test_check_config_ok_and_warnings(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files, extra='frobnicate = 1\nplugin_paths = { "/x" }\n'
                     'modules_enabled = { "ping", "nosuchmodule" }\n')
    r = run_ctl("check", "config", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"warning: {cfg}:8:1: unknown option 'frobnicate'" in r.stdout
    assert f"info: {cfg}:9:1: option 'plugin_paths' is a Prosody option" in r.stdout
    assert "module 'nosuchmodule' is not available" in r.stdout
    assert "ok (1 virtual host(s)" in r.stdout


def test_check_config_syntax_error(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files)
    avail = tmp_path / "conf.avail" / f"{DOMAIN}.cfg.lua"
    avail.write_text(f'VirtualHost "{DOMAIN}"\n    ssl = {{ key = "k";\n        certificate = = "c" }}\n')
    r = run_ctl("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    # the error is in the included file, reached through the conf.d link
    assert f"conf.d/{DOMAIN}.cfg.lua:3:23: " in r.stderr, r.stderr
    # every command refuses a broken configuration the same way
    r = run_ctl("--config", str(cfg), "users", DOMAIN)
    assert r.returncode == 1 and ":3:23: " in r.stderr


def test_check_config_type_error_is_an_error(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files, extra='c2s_ports = "many"\n')
    r = run_ctl("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    assert f"error: {cfg}:8:1: c2s_ports: expected a port number" in r.stdout


def test_check_config_sql_storage(tmp_path, cert_files):
    # PostgreSQL: used, nothing to say (check config does not connect to it)
    cfg = write_tree(tmp_path, cert_files, extra='storage = "sql"\n'
                     'sql = { driver = "PostgreSQL", database = "prosody" }\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: " + str(cfg) + ":8:1: storage" not in r.stdout
    assert "storage: postgresql database 'prosody' on local socket" in r.stdout
    # Prosody's SQLite3 driver: xmppd's own SQLite database, not Prosody's file
    cfg = write_tree(tmp_path, cert_files, extra='storage = "sql"\n'
                     'sql = { driver = "SQLite3", database = "prosody.sqlite" }\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (f"warning: {cfg}:8:1: storage names \"sql\" with SQLite (sql.driver = 'SQLite3'): "
            "xmppd keeps that data in its own SQLite database (data_path/xmppd.sqlite), "
            "not in the file of the sql option") in r.stdout
    # a driver xmppd does not have: an error at the sql option
    cfg = write_tree(tmp_path, cert_files, extra='storage = "sql"\n'
                     'sql = { driver = "MySQL", database = "prosody" }\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    assert (f"error: {cfg}:9:1: sql: driver 'MySQL' is not supported (xmppd has PostgreSQL "
            "and SQLite3)") in r.stdout


def test_check_config_unknown_storage_backend_is_an_error(tmp_path, cert_files):
    cfg = write_tree(tmp_path, cert_files, extra='storage = { roster = "sql", archive = "mongodb" }\n')
    r = run_ctl("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    assert f"error: {cfg}:8:1: storage: unknown storage backend 'mongodb'" in r.stdout
    assert "storage names \"sql\"" in r.stdout


def test_check_config_unreadable_ssl_files(tmp_path):
    cfg = write_tree(tmp_path, {"crt": "/nonexistent/x.crt", "key": "/nonexistent/x.key"})
    r = run_ctl("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    assert re.search(r"error: xmppd.test: the certificate file /nonexistent/x.crt does not exist "
                     r"\(from ssl at .*xmppd.test.cfg.lua:2:5\)", r.stdout), r.stdout


@pytest.mark.parametrize("path, message", [
    ("{tmp}/missing.cfg.lua", "cannot read configuration {tmp}/missing.cfg.lua: no such file"),
    ("{tmp}", "cannot read configuration file: Is a directory"),
])
def test_unreadable_config(tmp_path, path, message):
    path = path.format(tmp=tmp_path)
    for args in (("check", "config"), ("users", DOMAIN), ("about",)):
        r = run_ctl("--config", path, *args)
        assert r.returncode == 1
        assert message.format(tmp=tmp_path) in r.stderr


@pytest.mark.external("prosody")
def test_check_config_debian_prosody_default():
    if not PROSODY_CFG.exists():
        pytest.skip("Debian's prosody package is not installed (apt-get install prosody)")
    r = run_ctl("--config", str(PROSODY_CFG), "check", "config")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in r.stdout
    assert f"{PROSODY_CFG}:" in r.stdout             # warnings carry file:line
    assert "module 'admin_shell' is not available" in r.stdout   # Prosody-only modules warn
    # Debian's config loads mod_limits and sets its table: xmppd's core does that job
    assert "module 'limits'" not in r.stdout and "option 'limits'" not in r.stdout
    assert "c2s: read 10,000 bytes/s" in r.stdout
    assert "ok (" in r.stdout


# -- enable / disable -------------------------------------------------------------------

def test_enable_disable_symlink(cfg):
    avail = cfg.parent / "conf.avail" / "falcot.com.cfg.lua"
    avail.write_text('VirtualHost "falcot.com"\n')
    link = cfg.parent / "conf.d" / "falcot.com.cfg.lua"
    r = run_ctl_here("--config", str(cfg), "enable", "falcot.com")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == "../conf.avail/falcot.com.cfg.lua"
    assert "falcot.com" in run_ctl_here("--config", str(cfg), "about").stdout
    assert add(lambda *a, **k: run_ctl("--config", str(cfg), *a, **k), "joe@falcot.com").returncode == 0
    r = run_ctl_here("--config", str(cfg), "enable", "falcot.com")
    assert r.returncode == 0 and "already enabled" in r.stdout
    r = run_ctl_here("--config", str(cfg), "disable", "falcot.com")
    assert r.returncode == 0 and not link.exists() and not link.is_symlink()
    assert avail.exists()
    r = run_ctl_here("--config", str(cfg), "users", "falcot.com")
    assert r.returncode == 1 and "unknown domain 'falcot.com'" in r.stderr


def test_enable_disable_errors(cfg):
    r = run_ctl_here("--config", str(cfg), "enable", "nowhere.test")
    assert r.returncode == 1 and "conf.avail/nowhere.test.cfg.lua" in r.stderr
    r = run_ctl_here("--config", str(cfg), "disable", "nowhere.test")
    assert r.returncode == 1 and "nowhere.test is not enabled" in r.stderr
    r = run_ctl_here("--config", str(cfg), "enable", "../../etc")
    assert r.returncode == 1 and "invalid domain" in r.stderr
    (cfg.parent / "conf.d" / "plain.test.cfg.lua").write_text('VirtualHost "plain.test"\n')
    r = run_ctl_here("--config", str(cfg), "disable", "plain.test")
    assert r.returncode == 1 and "is a regular file" in r.stderr


def test_enable_accepts_the_handbooks_absolute_link(cfg):
    avail = cfg.parent / "conf.avail" / "falcot.com.cfg.lua"
    avail.write_text('VirtualHost "falcot.com"\n')
    os.symlink(avail, cfg.parent / "conf.d" / "falcot.com.cfg.lua")   # ln -s /etc/.../conf.avail/x conf.d/
    r = run_ctl_here("--config", str(cfg), "enable", "falcot.com")
    assert r.returncode == 0 and "already enabled" in r.stdout
    assert run_ctl_here("--config", str(cfg), "disable", "falcot.com").returncode == 0


# -- certificates -----------------------------------------------------------------

def test_cert_generate(cfg):
    from cryptography import x509
    r = run_ctl("--config", str(cfg), "cert", "generate", DOMAIN)
    assert r.returncode == 0, r.stderr
    crt, key = cfg.parent / "certs" / f"{DOMAIN}.crt", cfg.parent / "certs" / f"{DOMAIN}.key"
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert DOMAIN in names.get_values_for_type(x509.DNSName)
    assert key.stat().st_mode & 0o077 == 0
    r = run_ctl("--config", str(cfg), "cert", "generate", DOMAIN)
    assert r.returncode == 1 and "already exists (use --force" in r.stderr
    r = run_ctl("--config", str(cfg), "cert", "generate", DOMAIN, "--force")
    assert r.returncode == 0
    r = run_ctl("--config", str(cfg), "cert", "generate", "bad domain")
    assert r.returncode == 1 and "invalid domain" in r.stderr


def test_about(ctl, cfg):
    r = ctl("about")
    assert r.returncode == 0
    assert r.stdout.startswith("xmppd ")
    assert f"data:   {cfg.parent / 'var'}" in r.stdout
    assert f"hosts:  {DOMAIN}" in r.stdout


# -- commands added by feature packages ---------------------------------------------

def test_feature_packages_add_commands(tmp_path, monkeypatch, capsys, cfg):
    """A module's CLI commands are registered and get xmppctl's context; a module
    whose commands are broken is reported and skipped."""
    import xmppd.modules
    from xmppd.cli import ctl as ctlmod
    pkgs = tmp_path / "plugins"
    (pkgs / "zzfeature").mkdir(parents=True)
    (pkgs / "zzfeature" / "__init__.py").write_text(
        "from xmppd.moduleapi import CliCommand\n"
        "from . import cli\n"
        "CLI = [CliCommand('zz', cli.register)]\n"
        "def setup(m):\n    pass\n")
    (pkgs / "zzfeature" / "cli.py").write_text(
        "def register(subparsers, common):\n"
        "    p = subparsers.add_parser('zz', parents=[common], help='test command')\n"
        "    p.add_argument('what')\n"
        "    async def run(args, ctx):\n"
        "        print('zz', args.what, sorted(ctx.config.hosts))\n"
        "        if args.what == 'bad':\n"
        "            raise ctx.Error('bad thing')\n"
        "        return 3\n"
        "    p.set_defaults(func=run)\n"
        "    return p\n")
    (pkgs / "zzbroken").mkdir()
    (pkgs / "zzbroken" / "__init__.py").write_text("from . import cli\nCLI = []\n")
    (pkgs / "zzbroken" / "cli.py").write_text("raise RuntimeError('oops')\n")
    monkeypatch.setattr(xmppd.modules, "__path__", list(xmppd.modules.__path__) + [str(pkgs)])
    try:
        assert ctlmod.main(["zz", "thing", "--config", str(cfg)]) == 3
        out, err = capsys.readouterr()
        assert out == f"zz thing ['{DOMAIN}']\n"
        assert "commands of module 'zzbroken' are unavailable: RuntimeError: oops" in err
        assert ctlmod.main(["zz", "bad", "--config", str(cfg)]) == 1
        assert "xmppctl: bad thing" in capsys.readouterr().err
    finally:
        for name in [n for n in sys.modules if n.startswith(("xmppd.modules.zz"))]:
            del sys.modules[name]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as the admin runs xmppctl")
def test_root_acts_as_the_owner_of_the_data_directory(cfg, ctl):
    """As root, xmppctl writes the database as the daemon's user (like prosodyctl)."""
    var = cfg.parent / "var"
    var.mkdir()
    os.chown(var, 65534, 65534)
    assert add(ctl, f"alice@{DOMAIN}").returncode == 0
    assert {f.stat().st_uid for f in var.iterdir()} == {65534}


def test_check_config_lists_the_limits_in_force(tmp_path, cert_files):
    from .conftest import write_tree
    cfg = write_tree(tmp_path, cert_files, extra='limits = { c2s = { rate = "5kb/s" } }\n'
                                                 'max_roster_items = 300\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "limits in force:" in out
    assert "c2s: read 5,000 bytes/s (burst 2s), 1,000,000 bytes may wait for it" in out
    assert "max_roster_items = 300" in out
    assert "offline_max_messages = 1000" in out          # a module's limit, at its default
    assert "20 failures from one address ban it" in out
    bad = write_tree(tmp_path / "bad", cert_files, extra='limits = { c2s = { rate = "fast" } }\n') \
        if (tmp_path / "bad").mkdir() is None else None
    r = run_ctl_here("--config", str(bad), "check", "config")
    assert r.returncode == 1 and "limits: rate 'fast'" in r.stdout


def test_check_config_states_the_storage_durability(tmp_path, cert_files):
    from .conftest import write_tree
    cfg = write_tree(tmp_path, cert_files)
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "storage: sqlite " in r.stdout and "sqlite_tune = normal" in r.stdout
    assert "survives a crash of xmppd (kill -9), not of the machine" in r.stdout
    (tmp_path / "safe").mkdir()
    cfg = write_tree(tmp_path / "safe", cert_files, extra='sqlite_tune = "safe"\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 0 and "sqlite_tune = safe" in r.stdout and "crash of the machine too" in r.stdout
    (tmp_path / "bad").mkdir()
    cfg = write_tree(tmp_path / "bad", cert_files, extra='sqlite_tune = "paranoid"\n')
    r = run_ctl_here("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    assert f"{cfg}:8:1: sqlite_tune: \"paranoid\" is not one of" in r.stdout, r.stdout


def test_cert_generate_says_which_certificate_xmppd_will_use(tmp_path, cert_files):
    from .conftest import write_tree
    # the host names a certificate of its own: that one is used, and the admin is told
    cfg = write_tree(tmp_path, cert_files)
    r = run_ctl("--config", str(cfg), "cert", "generate", DOMAIN)
    assert r.returncode == 0, r.stderr
    host_file = tmp_path / "conf.d" / f"{DOMAIN}.cfg.lua"
    assert (f"note: {DOMAIN}'s ssl ({host_file}:2:5) names {cert_files['crt']}, which xmppd "
            "uses instead") in r.stdout
    assert "finds it there by name" not in r.stdout
    # no ssl: the certificates directory is where xmppd looks
    (tmp_path / "plain").mkdir()
    cfg = write_tree(tmp_path / "plain", cert_files, ssl=False)
    r = run_ctl("--config", str(cfg), "cert", "generate", DOMAIN)
    assert r.returncode == 0 and "xmppd finds it there by name" in r.stdout and "note:" not in r.stdout


def test_check_config_checks_the_log_and_pid_files_can_be_written(tmp_path, cert_files):
    from .conftest import write_tree
    (tmp_path / "afile").write_text("not a directory")
    cfg = write_tree(tmp_path, cert_files, extra='pidfile = "afile/run/xmppd.pid"\n')
    cfg.write_text(cfg.read_text().replace('log = { info = "*console" }',
                                           'log = { info = "afile/xmppd.log"; warn = "*syslog" }'))
    r = run_ctl("--config", str(cfg), "check", "config")
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert f"{cfg}:7:1: log: cannot write {tmp_path / 'afile' / 'xmppd.log'}: " in out, out
    assert f"{cfg}:8:1: pidfile: cannot write {tmp_path / 'afile' / 'run' / 'xmppd.pid'}: " in out
    assert "is not a directory" in out
