"""Prosody's ``uptime`` name: loads the lastactivity module (the server's uptime through XEP-0012), so a Prosody
``modules_enabled`` carries over."""
PROTOCOLS: list = []
DEPENDS = ["lastactivity"]
OPTIONS: list = []


def setup(m) -> None:
    pass
