"""``xmppctl check dns DOMAIN``: the SRV records an XMPP domain should publish, compared
with what DNS answers, and what to fix.

The handbook's zone file (Falcot, section 11.8.4) publishes::

    _xmpp-client._tcp  IN SRV 5 0 5222 xmpp-gw.falcot.com.
    _xmpp-server._tcp  IN SRV 5 0 5269 xmpp-gw.falcot.com.

and XEP-0368 adds ``_xmpps-client._tcp`` / ``_xmpps-server._tcp`` for direct TLS ports
(only if ``c2s_direct_tls_ports`` / ``s2s_direct_tls_ports`` are set). Ports are taken
from the configuration. Each target must have an A or AAAA record.

``xmppctl check`` calls :func:`run_check` for ``check dns DOMAIN``.
"""
from __future__ import annotations

import asyncio

import dns.exception

from ..net.dns import NoService, S2SResolver

DEFAULTS = {"_xmpp-client._tcp": ("c2s_ports", 5222), "_xmpp-server._tcp": ("s2s_ports", 5269),
            "_xmpps-client._tcp": ("c2s_direct_tls_ports", None),
            "_xmpps-server._tcp": ("s2s_direct_tls_ports", None)}


def expected_ports(cfg) -> dict[str, list[int]]:
    out = {}
    for service, (option, default) in DEFAULTS.items():
        v = cfg.get(option) if cfg is not None else None
        if v is None:
            v = [default] if default else []
        if isinstance(v, (int, float)):
            v = [v]
        ports = [int(p) for p in v if int(p) != 0]
        if ports:
            out[service] = ports
    return out


TIMEOUT = 5.0


def _short(exc: Exception) -> str:
    """dnspython's message, without the per-attempt detail after the first clause."""
    text = str(exc) or type(exc).__name__
    return text.split(": Server ", 1)[0]


async def check(domain: str, cfg=None, nameservers=None) -> tuple[list[str], int]:
    """Lines to print and the number of problems."""
    if nameservers is None and cfg is not None:
        nameservers = cfg.get("dns_nameservers")
    res = S2SResolver(list(nameservers) if nameservers else None, timeout=TIMEOUT)
    lines: list[str] = []
    problems = 0
    for service, ports in expected_ports(cfg).items():
        name = f"{service}.{domain}"
        try:
            recs = await res.srv(name + ".")
        except NoService:
            lines.append(f"  {name}: '.' (service explicitly not offered)")
            lines.append(f"    fix: replace it with  {name}. IN SRV 5 0 {ports[0]} <host>.")
            problems += 1
            continue
        except dns.exception.Timeout:
            # no answer at all: the name server is down or unreachable; asking it for
            # the other records would only wait as long again
            who = ", ".join(nameservers) if nameservers else "the system's name servers"
            lines.append(f"  {name}: no answer from {who} within {TIMEOUT:.0f} s; "
                         f"is it running and reachable?")
            problems += 1
            break
        except dns.exception.DNSException as exc:
            lines.append(f"  {name}: lookup failed: {_short(exc)}")
            problems += 1
            continue
        if not recs:
            lines.append(f"  {name}: missing")
            lines.append(f"    fix: add  {name}. IN SRV 5 0 {ports[0]} <host of this server>.")
            problems += 1
            continue
        for prio, weight, port, target in sorted(recs):
            addrs = await res.addresses(target)
            note = "ok"
            if port not in ports:
                note = f"port {port}, but this server listens on {', '.join(map(str, ports))}"
                problems += 1
            if not addrs:
                note = f"target {target} has no A/AAAA record"
                problems += 1
            lines.append(f"  {name}: SRV {prio} {weight} {port} {target}. -> "
                         f"{', '.join(addrs) or 'no address'}  [{note}]")
    if problems == 0:
        lines.append("DNS looks right.")
    return lines, problems


def run_check(args, cfg) -> int:
    lines, problems = asyncio.run(check(args.domain, cfg, getattr(args, "nameserver", None)))
    print(f"SRV records for {args.domain}:")
    for line in lines:
        print(line)
    return 1 if problems else 0
