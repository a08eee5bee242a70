"""XML namespaces of the core protocols (RFC 6120/6121). Feature modules keep their own."""

CLIENT = "jabber:client"
SERVER = "jabber:server"
COMPONENT = "jabber:component:accept"
STREAM = "http://etherx.jabber.org/streams"
STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
XML = "http://www.w3.org/XML/1998/namespace"
XML_LANG = "{%s}lang" % XML
