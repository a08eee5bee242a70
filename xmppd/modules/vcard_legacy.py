"""Prosody's ``vcard_legacy`` name: loads the vcard module (XEP-0054).

Prosody's mod_vcard_legacy bridges vcard-temp to PEP vCard4; here it is an
alias, so a Prosody ``modules_enabled`` carries over.
"""
PROTOCOLS: list = []
DEPENDS = ["vcard"]
OPTIONS: list = []


def setup(m) -> None:
    pass
