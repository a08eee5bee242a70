"""Prosody's module names: each loads the module that does the job, a Component's
own modules_enabled is honoured (muc_mam on a MUC component), and check config
does not call them unknown."""
from xmppd.app import ALIASES, FINDER
from xmppd.config import parse_config_text
from xmppd.config.options import CORE_OPTIONS, OptionRegistry, check

from tests.harness import Harness


async def test_each_prosody_name_loads_its_module():
    names = [n for n in ALIASES if n != "muc_mam"]
    async with Harness(modules=names) as h:
        loaded = set(h.host().modules)
        for alias in names:
            assert ALIASES[alias] in loaded, alias
            assert alias not in loaded       # one module, under its own name
            assert h.host().provided(alias) is h.host().provided(ALIASES[alias])


async def test_muc_mam_in_a_components_modules_enabled():
    component = '''
        Component "conference.example.com" "muc"
            modules_enabled = { "muc_mam" }
    '''
    async with Harness(components=component) as h:
        muc = h.server.hosts["conference.example.com"]
        assert "muc" in muc.modules
        assert "mam" not in muc.modules      # the alias is not the account archive
        assert muc.provided("muc") is not None


def test_check_config_knows_prosody_names():
    text = '''
        modules_enabled = { "csi_simple", "register_ibr", "uptime", "bookmarks", "vcard_legacy",
                            "saslauth", "tls", "posix", "nonsense_module" }
        VirtualHost "example.com"
        Component "conference.example.com" "muc"
            modules_enabled = { "muc_mam" }
    '''
    cfg = parse_config_text(text, filename="x.cfg.lua")
    reg = OptionRegistry()
    for opt in FINDER.declared_options(CORE_OPTIONS):
        try:
            reg.declare(opt)
        except ValueError:
            pass
    warnings = [str(w) for w in check(cfg, reg, FINDER.known())]
    assert [w for w in warnings if "not available" in w] == [
        next(w for w in warnings if "nonsense_module" in w)]
