"""Prosody's ``register_ibr`` name: loads the register module (XEP-0077)."""
PROTOCOLS: list = []
DEPENDS = ["register"]
OPTIONS: list = []


def setup(m) -> None:
    pass
