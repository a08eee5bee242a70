"""DNS for server-to-server connections (RFC 6120 §3.2, XEP-0368, RFC 2782).

``S2SResolver.targets(domain)`` asks for ``_xmpps-server._tcp.DOMAIN`` (direct TLS)
and ``_xmpp-server._tcp.DOMAIN`` (STARTTLS) SRV records at once, and returns the
candidates in the order they must be tried: lowest priority first, weighted random
order within a priority (RFC 2782), direct TLS before STARTTLS at equal priority.
A single SRV record whose target is ``.`` means "no service" for that kind; when no
SRV record exists at all the fallback is the domain itself on port 5269 (STARTTLS).

``addresses(host)`` gives the IPv6 and IPv4 addresses of a target (AAAA and A asked
at once, IPv6 first). Everything is asynchronous (dnspython's asyncio resolver):
nothing here blocks the event loop.

Nameservers come from ``/etc/resolv.conf`` unless ``dns_nameservers`` lists some:
``dns_nameservers = { "127.0.0.1:5353", "::1" }`` (a port after the last colon of
an IPv4 address, or ``[v6]:port``) — that is how the tests serve real SRV records
from a local DNS server.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

log = logging.getLogger("xmppd.dns")

DEFAULT_S2S_PORT = 5269


class NoService(Exception):
    """The domain says it offers no XMPP server service (SRV target ``.``)."""


@dataclass(frozen=True)
class Target:
    host: str            # a DNS name (no trailing dot) or an IP literal
    port: int
    direct_tls: bool     # XEP-0368: TLS from the first byte
    srv: bool = True     # False for the A/AAAA fallback on 5269

    def __str__(self) -> str:
        return f"{self.host}:{self.port}{' (direct TLS)' if self.direct_tls else ''}"


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` / ``"[::1]:53"`` / ``"::1"`` / ``"10.0.0.1"`` → (address, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        addr, _, rest = spec[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif spec.count(":") == 1:
        addr, _, p = spec.partition(":")
        port = int(p)
    else:
        addr, port = spec, 53
    ipaddress.ip_address(addr)  # ValueError for a name: nameservers are addresses
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return addr, port


def order_srv(records: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """RFC 2782 ordering of (priority, weight, port, target): by priority, and within a
    priority a weighted random pick without replacement (weight 0 still gets a chance)."""
    out = []
    for prio in sorted({r[0] for r in records}):
        group = [r for r in records if r[0] == prio]
        group.sort(key=lambda r: r[1])  # zero weights first, as RFC 2782 asks
        while group:
            total = sum(r[1] for r in group)
            pick = random.randint(0, total)
            running = 0
            for i, r in enumerate(group):
                running += r[1]
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


class S2SResolver:
    def __init__(self, nameservers: list[str] | None = None, *, timeout: float = 10.0):
        if nameservers:
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = [dns.nameserver.Do53Nameserver(a, p)
                               for a, p in map(parse_nameserver, nameservers)]
            self.custom = True
        else:
            try:
                res = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:  # no /etc/resolv.conf
                res = dns.asyncresolver.Resolver(configure=False)
                res.nameservers = ["127.0.0.1"]
            self.custom = False
        res.lifetime = timeout
        res.timeout = min(timeout, 3.0)
        self.resolver = res

    async def srv(self, name: str) -> list[tuple[int, int, int, str]] | None:
        """SRV records of ``name`` as (priority, weight, port, target); None when there
        are none (NXDOMAIN / no answer); raises NoService for the ``.`` target."""
        try:
            ans = await self.resolver.resolve(name, "SRV", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        recs = [(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
                for r in ans]
        if len(recs) == 1 and recs[0][3] in ("", "."):
            raise NoService(name)
        return [r for r in recs if r[3] not in ("", ".")] or None

    async def targets(self, domain: str) -> list[Target]:
        """The candidates to connect to for ``domain``, in order (see module doc).
        Raises NoService when the domain publishes ``.`` and nothing else, and
        dns.exception.DNSException when DNS itself fails (timeout, SERVFAIL)."""
        domain = domain.rstrip(".")
        results = await asyncio.gather(self.srv(f"_xmpps-server._tcp.{domain}."),
                                       self.srv(f"_xmpp-server._tcp.{domain}."),
                                       return_exceptions=True)
        recs: list[tuple[int, int, int, str, bool]] = []
        no_service = 0
        for res, direct in zip(results, (True, False)):
            if isinstance(res, NoService):
                no_service += 1
            elif isinstance(res, BaseException):
                # a failure for one of the two names is not fatal if the other answers
                if not isinstance(res, dns.exception.DNSException):
                    raise res
                log.debug("SRV lookup for %s (%s) failed: %s", domain, "xmpps" if direct else "xmpp", res)
            elif res:
                recs += [(p, w, port, t, direct) for p, w, port, t in res]
        if not recs:
            if no_service:
                raise NoService(domain)
            errors = [r for r in results if isinstance(r, dns.exception.DNSException)]
            if len(errors) == 2:
                raise errors[1]
            return [Target(domain, DEFAULT_S2S_PORT, False, srv=False)]
        out: list[Target] = []
        for prio in sorted({r[0] for r in recs}):
            # direct TLS first at equal priority (XEP-0368 §3)
            for direct in (True, False):
                group = [(p, w, port, t) for p, w, port, t, d in recs if p == prio and d is direct]
                out += [Target(t, port, direct) for _, _, port, t in order_srv(group)]
        return out

    async def addresses(self, host: str) -> list[str]:
        """IP addresses of ``host`` (IPv6 first); [] if it has none."""
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        results = await asyncio.gather(
            self.resolver.resolve(host + ".", "AAAA", search=False),
            self.resolver.resolve(host + ".", "A", search=False),
            return_exceptions=True)
        out: list[str] = []
        for res in results:
            if isinstance(res, BaseException):
                if not isinstance(res, dns.exception.DNSException):
                    raise res
                continue
            out += [r.address for r in res]
        if not out and not self.custom:
            # /etc/hosts (the system's own resolver), off the event loop
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=1)
                out = list(dict.fromkeys(i[4][0] for i in infos))
            except OSError:
                pass
        return out
