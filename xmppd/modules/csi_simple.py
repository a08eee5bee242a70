"""Prosody's ``csi_simple`` name: loads the csi module (client state indication, XEP-0352), so a Prosody
``modules_enabled`` carries over."""
PROTOCOLS: list = []
DEPENDS = ["csi"]
OPTIONS: list = []


def setup(m) -> None:
    pass
