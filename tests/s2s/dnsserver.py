"""A tiny authoritative DNS server for the tests (dnspython wire format, UDP and TCP).

Runs in a thread on 127.0.0.1 (ephemeral port) so that xmppd, Prosody (libunbound,
``forward = "127.0.0.1@PORT"``) and ejabberd (Erlang inet_res, ``{nameserver, ...}``)
all resolve the test domains through real SRV and A queries.

    dns = TestDNS(); dns.start()
    dns.srv("_xmpp-server._tcp.a.test", "a.test", 40123)
    dns.a("a.test", "127.0.0.1")

Names not in the zone get NXDOMAIN; names in it without the asked type, NODATA.
"""
from __future__ import annotations

import socket
import socketserver
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class TestDNS:
    __test__ = False

    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.names: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.port = 0
        self._servers = []

    # -- zone -----------------------------------------------------------------
    @staticmethod
    def _n(name: str) -> str:
        return name.rstrip(".").lower() + "."

    def add(self, name: str, rtype: str, value: str) -> None:
        with self.lock:
            self.records.setdefault((self._n(name), rtype), []).append(value)
            self.names.add(self._n(name))

    def srv(self, name: str, target: str, port: int, priority: int = 0, weight: int = 0) -> None:
        self.add(name, "SRV", f"{priority} {weight} {port} {self._n(target) if target != '.' else '.'}")

    def a(self, name: str, addr: str = "127.0.0.1") -> None:
        self.add(name, "A", addr)

    def remove(self, name: str) -> None:
        with self.lock:
            n = self._n(name)
            for key in [k for k in self.records if k[0] == n]:
                del self.records[key]
            self.names.discard(n)

    # -- server ---------------------------------------------------------------
    def answer(self, wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if not q.question:
            r.set_rcode(dns.rcode.FORMERR)
            return r.to_wire()
        question = q.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        with self.lock:
            self.queries.append((name, rtype))
            values = list(self.records.get((name, rtype), ()))
            # an empty non-terminal (test., _tcp.x.test.) exists: NODATA, not NXDOMAIN,
            # or resolvers that cut at NXDOMAIN (RFC 8020) give up on the whole subtree
            known = name in self.names or any(n.endswith("." + name) for n in self.names) or name == "."
        if values:
            rrset = dns.rrset.from_text(question.name, 5, "IN", rtype, *values)
            r.answer.append(rrset)
        elif not known:
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r.to_wire()

    def start(self) -> "TestDNS":
        outer = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                try:
                    sock.sendto(outer.answer(data), self.client_address)
                except Exception:
                    pass

        class TCP(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    n = int.from_bytes(self.request.recv(2), "big")
                    data = b""
                    while len(data) < n:
                        chunk = self.request.recv(n - len(data))
                        if not chunk:
                            return
                        data += chunk
                    out = outer.answer(data)
                    self.request.sendall(len(out).to_bytes(2, "big") + out)
                except Exception:
                    pass

        udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDP)
        self.port = udp.server_address[1]
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), TCP)
        for srv in (udp, tcp):
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)
        return self

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()

    @property
    def spec(self) -> str:
        return f"127.0.0.1:{self.port}"
