"""External Service Discovery (XEP-0215): tells clients where the STUN and TURN
servers are (for audio and video calls), with short-lived TURN credentials.

Services come from the ``external_services`` list and from modules that add their
own as ``external-service`` items (``turn_external``)::

    external_services = {
        { type = "stun", transport = "udp", host = "turn-server.falcot.com", port = 3478 };
        { type = "turn", transport = "udp", host = "turn-server.falcot.com", port = 3478,
          secret = true };                      -- credentials from external_service_secret
        { type = "turn", transport = "tcp", host = "turn.example.net", port = 3478,
          username = "roland", password = "secret_password" };   -- a fixed account
    }

``secret`` (``true`` for ``external_service_secret``, or the secret itself) makes
time-limited credentials the way coturn's ``use-auth-secret`` expects (the TURN REST
API draft): the user name is ``<expiry as Unix time>`` (``:<username>`` appended when
one is given) and the password base64(HMAC-SHA1(secret, user name)).

``external-service`` items: a module offers a service with
``m.add_item("external-service", entry)``, ``entry`` a dict with the keys of an
``external_services`` entry (``type``, ``transport``, ``host``, ``port``, ``secret``
as the secret itself, ``ttl``, ``username``/``password``, ``restricted``). The items
are read at every request (``m.items``), after the configured services, and prepared
the same way (the host, port, secret and ttl defaults apply); so a module loaded or
unloaded later changes the answer at once, and the credentials are always fresh.

Only local users connected to this server may ask, unless ``external_service_access``
lists JIDs or domains. Both ``urn:xmpp:extdisco:2`` and the older ``:1`` are answered.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import Option
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.time import utc_stamp

PROTOCOLS = ["XEP-0215"]
NAMESPACES = (ns.EXTDISCO, ns.EXTDISCO_1)
OPTIONS = [
    Option("external_services", "list", [], "both",
           "services offered to clients: tables with type (stun, turn, turns), transport "
           "(udp, tcp), host, port, and either username and password or secret (true: "
           "external_service_secret) for time-limited TURN credentials; ttl, restricted"),
    Option("external_service_host", "string", None, "both",
           "host of a service that names none (default: the VirtualHost's name)"),
    Option("external_service_port", "integer", None, "both",
           "port of a service that names none", min=1, max=65535),
    Option("external_service_secret", "string", None, "both",
           "shared secret for services with secret = true (coturn's static-auth-secret)"),
    Option("external_service_ttl", "integer", 86400, "both",
           "seconds that generated credentials stay valid", min=60),
    Option("external_service_access", "set", [], "both",
           "JIDs or domains that may ask besides local users (default: only local users "
           "connected to this server)"),
]
ITEM = "external-service"   # the item kind other modules add services as
TYPES = ("stun", "turn", "turns")


def rest_credentials(secret: str, ttl: int, username: str | None,
                     now: float | None = None) -> tuple[str, str, float]:
    """TURN REST API credentials: ``(username, password, expires)``."""
    expires = int((time.time() if now is None else now) + ttl)
    user = f"{expires}:{username}" if username else str(expires)
    password = base64.b64encode(hmac.digest(secret.encode(), user.encode(), hashlib.sha1)).decode()
    return user, password, expires


def prepare(item, *, host: str, port: int | None, secret: str | None, ttl: int,
            now: float | None = None) -> dict | None:
    """One configured service as the attributes of a ``<service/>`` (None: unusable)."""
    if not isinstance(item, dict) or item.get("type") not in TYPES:
        return None
    srv = {"type": item["type"], "host": str(item.get("host") or host)}
    if item.get("transport") in ("udp", "tcp"):
        srv["transport"] = item["transport"]
    p = item.get("port", port)
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        srv["port"] = str(int(p))
    restricted = item.get("restricted") is True
    key = item.get("secret")
    if key is True:
        key = secret
    if isinstance(key, str) and key:
        t = item.get("ttl")
        t = int(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else ttl
        user, password, expires = rest_credentials(key, t, item.get("username"), now)
        srv.update(username=user, password=password, expires=utc_stamp(expires))
        restricted = True
    elif isinstance(item.get("password"), str):
        srv["password"] = item["password"]
        if isinstance(item.get("username"), str):
            srv["username"] = item["username"]
        restricted = True
    if restricted:
        srv["restricted"] = "1"
    return srv


def answer(event, tag: str, chosen: list[dict]) -> ET.Element:
    """``<services/>`` or ``<credentials/>`` in the namespace the request used."""
    xmlns = st.namespace_of(event.payload.tag)
    el = ET.Element(ns.q(xmlns, tag))
    for srv in chosen:
        ET.SubElement(el, ns.q(xmlns, "service"), srv)
    return el


class ExternalServices:
    """The host's configured services and access list, read once at load; the
    ``external-service`` items are read at each request."""

    def __init__(self, m):
        self.m = m
        self.configured = m.get_option("external_services") or []
        self.access = set(m.get_option("external_service_access") or ())
        self.defaults = {"host": m.get_option("external_service_host") or m.host.name,
                         "port": m.get_option("external_service_port"),
                         "secret": m.get_option("external_service_secret"),
                         "ttl": m.get_option("external_service_ttl")}

    def services(self) -> list[dict]:
        """Every service, with credentials made now (they expire)."""
        prepared = (prepare(item, **self.defaults)
                    for item in [*self.configured, *self.m.items(ITEM)])
        return [srv for srv in prepared if srv is not None]

    def check_access(self, event) -> None:
        access = self.access
        user_domain = event.from_bare.rpartition("@")[2]
        local = getattr(event.origin, "kind", None) == "c2s"
        if (not access and local) or event.from_bare in access or user_domain in access:
            return
        raise StanzaError("forbidden", "external services are for this server's users")

    def on_services(self, event):
        self.check_access(event)
        wanted = event.payload.get("type")
        chosen = [s for s in self.services() if wanted is None or s["type"] == wanted]
        return answer(event, "services", chosen)

    def on_credentials(self, event):
        if getattr(event.origin, "kind", None) != "c2s":
            raise StanzaError("forbidden", "credentials are for this server's users")
        self.check_access(event)
        xmlns = st.namespace_of(event.payload.tag)
        restricted = [s for s in self.services() if s.get("restricted")]
        chosen = []
        for req in event.payload.findall(ns.q(xmlns, "service")):
            for s in restricted:
                if (s["type"] == req.get("type") and s["host"] == req.get("host")
                        and (req.get("port") is None or s.get("port") == req.get("port"))):
                    chosen.append(s)
        return answer(event, "credentials", chosen)


def setup(m) -> None:
    ext = ExternalServices(m)
    for xmlns in NAMESPACES:
        m.add_feature(xmlns)
        m.hook_iq("get", xmlns, "services", ext.on_services)
        m.hook_iq("get", xmlns, "credentials", ext.on_credentials)
