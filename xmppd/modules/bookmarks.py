"""Prosody's ``bookmarks`` name: loads the pep module (bookmarks 2 with private-storage compatibility, XEP-0402), so a Prosody
``modules_enabled`` carries over."""
PROTOCOLS: list = []
DEPENDS = ["pep"]
OPTIONS: list = []


def setup(m) -> None:
    pass
