"""Every error class maps to a wire condition (RFC 6120 §4.9, §6.5, §8.3).

``StreamError`` closes the stream, ``StanzaError`` becomes an error reply,
``SASLFailure`` becomes a ``<failure/>`` in the SASL namespace.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from . import ns

STREAM_CONDITIONS = frozenset({
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout",
    "host-gone", "host-unknown", "improper-addressing", "internal-server-error",
    "invalid-from", "invalid-namespace", "invalid-xml", "not-authorized",
    "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
    "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown",
    "undefined-condition", "unsupported-encoding", "unsupported-feature",
    "unsupported-stanza-type", "unsupported-version",
})

# condition -> default error type (RFC 6120 §8.3.3)
STANZA_CONDITIONS = {
    "bad-request": "modify", "conflict": "cancel", "feature-not-implemented": "cancel",
    "forbidden": "auth", "gone": "cancel", "internal-server-error": "cancel",
    "item-not-found": "cancel", "jid-malformed": "modify", "not-acceptable": "modify",
    "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
    "recipient-unavailable": "wait", "redirect": "modify", "registration-required": "auth",
    "remote-server-not-found": "cancel", "remote-server-timeout": "wait",
    "resource-constraint": "wait", "service-unavailable": "cancel",
    "subscription-required": "auth", "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

SASL_CONDITIONS = frozenset({
    "aborted", "account-disabled", "credentials-expired", "encryption-required",
    "incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
    "mechanism-too-weak", "not-authorized", "temporary-auth-failure",
})


class XMPPError(Exception):
    """Base of the errors that have a wire form."""


class StreamError(XMPPError):
    """Fatal to the stream: sent as ``<stream:error/>``, then the stream closes."""

    def __init__(self, condition: str, text: str | None = None):
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text

    def to_element(self) -> ET.Element:
        el = ET.Element(f"{{{ns.STREAM}}}error")
        ET.SubElement(el, f"{{{ns.STREAMS_ERR}}}{self.condition}")
        if self.text:
            t = ET.SubElement(el, f"{{{ns.STREAMS_ERR}}}text")
            t.text = self.text
        return el


class StanzaError(XMPPError):
    """An error reply to one stanza; the session lives on."""

    def __init__(self, condition: str, text: str | None = None, type: str | None = None,
                 app: ET.Element | None = None):
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.type = type or STANZA_CONDITIONS[condition]
        self.app = app

    def to_element(self, by: str | None = None) -> ET.Element:
        """The ``<error/>`` child (namespace-less: it takes the stanza's)."""
        el = ET.Element("error", {"type": self.type})
        if by:
            el.set("by", by)
        ET.SubElement(el, f"{{{ns.STANZAS_ERR}}}{self.condition}")
        if self.text:
            t = ET.SubElement(el, f"{{{ns.STANZAS_ERR}}}text")
            t.text = self.text
        if self.app is not None:
            el.append(self.app)
        return el


class SASLFailure(XMPPError):
    """A failed SASL exchange (RFC 6120 §6.5); the client may try again."""

    def __init__(self, condition: str, text: str | None = None):
        if condition not in SASL_CONDITIONS:
            raise ValueError(f"unknown SASL condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text

    def to_element(self) -> ET.Element:
        el = ET.Element(f"{{{ns.SASL}}}failure")
        ET.SubElement(el, f"{{{ns.SASL}}}{self.condition}")
        if self.text:
            t = ET.SubElement(el, f"{{{ns.SASL}}}text")
            t.text = self.text
        return el

    def to_sasl2_element(self) -> ET.Element:
        """The extensible profile's ``<failure/>`` (XEP-0388): the same condition
        (RFC 6120's namespace), the text in the profile's namespace."""
        el = ET.Element(f"{{{ns.SASL2}}}failure")
        ET.SubElement(el, f"{{{ns.SASL}}}{self.condition}")
        if self.text:
            ET.SubElement(el, f"{{{ns.SASL2}}}text").text = self.text
        return el
