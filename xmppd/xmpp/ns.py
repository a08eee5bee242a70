"""Every XML namespace the server speaks, by one name each.

Grouped by where it is defined; a module names ``ns.MAM``, never the string.
"""

# -- RFC 6120 / 6121: streams and stanzas ------------------------------------------
CLIENT = "jabber:client"
SERVER = "jabber:server"
COMPONENT = "jabber:component:accept"
STREAM = "http://etherx.jabber.org/streams"
STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL_CB = "urn:xmpp:sasl-cb:0"                      # XEP-0440
SASL2 = "urn:xmpp:sasl:2"                           # XEP-0388
SASL_UPGRADE = "urn:xmpp:sasl:upgrade:0"            # XEP-0480
SCRAM_UPGRADE = "urn:xmpp:scram-upgrade:0"          # XEP-0480
BIND2 = "urn:xmpp:bind:0"                           # XEP-0386
FAST = "urn:xmpp:fast:0"                            # XEP-0484
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
ROSTER = "jabber:iq:roster"
ROSTER_VER = "urn:xmpp:features:rosterver"
PRE_APPROVAL = "urn:xmpp:features:pre-approval"
XML = "http://www.w3.org/XML/1998/namespace"
XML_LANG = "{%s}lang" % XML

# -- server to server ------------------------------------------------------------------
DIALBACK = "jabber:server:dialback"                 # XEP-0220
DIALBACK_FEATURE = "urn:xmpp:features:dialback"
BIDI = "urn:xmpp:bidi"                              # XEP-0288
BIDI_FEATURE = "urn:xmpp:features:bidi"

# -- service discovery, forms, paging ---------------------------------------------------
DISCO_INFO = "http://jabber.org/protocol/disco#info"    # XEP-0030
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
DATA = "jabber:x:data"                                   # XEP-0004
RSM = "http://jabber.org/protocol/rsm"                   # XEP-0059
CAPS = "http://jabber.org/protocol/caps"                 # XEP-0115
SERVERINFO = "http://jabber.org/network/serverinfo"      # XEP-0157
COMMANDS = "http://jabber.org/protocol/commands"         # XEP-0050
ADMIN = "http://jabber.org/protocol/admin"               # XEP-0133 (FORM_TYPE, node prefix)

# -- account services -------------------------------------------------------------------
REGISTER = "jabber:iq:register"                          # XEP-0077
REGISTER_FEATURE = "http://jabber.org/features/iq-register"
PARS = "urn:xmpp:pars:0"                                 # XEP-0379 (and XEP-0445 tokens)
IBR_TOKEN = "urn:xmpp:ibr-token:0"                       # XEP-0445 stream feature
INVITE = "urn:xmpp:invite"                               # XEP-0401 (older stream feature)
PRIVATE = "jabber:iq:private"                            # XEP-0049
VCARD = "vcard-temp"                                     # XEP-0054
VCARD_UPDATE = "vcard-temp:x:update"                     # XEP-0153
VCARD_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"     # XEP-0398
LAST = "jabber:iq:last"                                  # XEP-0012
VERSION = "jabber:iq:version"                            # XEP-0092
TIME = "urn:xmpp:time"                                   # XEP-0202
PING = "urn:xmpp:ping"                                   # XEP-0199
BLOCKING = "urn:xmpp:blocking"                           # XEP-0191
BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
EXTDISCO = "urn:xmpp:extdisco:2"                         # XEP-0215
EXTDISCO_1 = "urn:xmpp:extdisco:1"
PUSH = "urn:xmpp:push:0"                                 # XEP-0357
PUSH_SUMMARY = "urn:xmpp:push:summary"

# -- messages ---------------------------------------------------------------------------
DELAY = "urn:xmpp:delay"                                 # XEP-0203
MSGOFFLINE = "msgoffline"                                # XEP-0160 (a disco feature)
FORWARD = "urn:xmpp:forward:0"                           # XEP-0297
HINTS = "urn:xmpp:hints"                                 # XEP-0334
SID = "urn:xmpp:sid:0"                                   # XEP-0359
CARBONS = "urn:xmpp:carbons:2"                           # XEP-0280
CARBONS_RULES = "urn:xmpp:carbons:rules:0"
MAM = "urn:xmpp:mam:2"                                   # XEP-0313
MAM_EXTENDED = "urn:xmpp:mam:2#extended"
CHATSTATES = "http://jabber.org/protocol/chatstates"     # XEP-0085
RECEIPTS = "urn:xmpp:receipts"                           # XEP-0184
MARKERS = "urn:xmpp:chat-markers:0"                      # XEP-0333
CORRECT = "urn:xmpp:message-correct:0"                   # XEP-0308
RETRACT_0 = "urn:xmpp:message-retract:0"                 # XEP-0424
RETRACT = "urn:xmpp:message-retract:1"
FASTEN = "urn:xmpp:fasten:0"                             # XEP-0422
REACTIONS = "urn:xmpp:reactions:0"                       # XEP-0444
JINGLE_MESSAGE_0 = "urn:xmpp:jingle-message:0"           # XEP-0353
JINGLE_MESSAGE = "urn:xmpp:jingle-message:1"
OMEMO_LEGACY = "eu.siacs.conversations.axolotl"          # XEP-0384 (0.3)
OMEMO = "urn:xmpp:omemo:2"
OX = "urn:xmpp:openpgp:0"                                # XEP-0373
PGP_ENCRYPTED = "jabber:x:encrypted"                     # XEP-0027
EME = "urn:xmpp:eme:0"                                   # XEP-0380
CONFERENCE = "jabber:x:conference"                       # XEP-0249
NICK = "http://jabber.org/protocol/nick"                 # XEP-0172

# -- streams, sessions ------------------------------------------------------------------
SM = "urn:xmpp:sm:3"                                     # XEP-0198
CSI = "urn:xmpp:csi:0"                                   # XEP-0352

# -- publish-subscribe ------------------------------------------------------------------
PUBSUB = "http://jabber.org/protocol/pubsub"             # XEP-0060
PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
PUBSUB_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
PUBSUB_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
PUBSUB_SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"
PUBSUB_SUBSCRIBE_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"
PUBSUB_META_DATA = "http://jabber.org/protocol/pubsub#meta-data"
AVATAR_DATA = "urn:xmpp:avatar:data"                     # XEP-0084
AVATAR_METADATA = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"                       # XEP-0402
BOOKMARKS_LEGACY = "storage:bookmarks"                   # XEP-0048

# -- multi-user chat ----------------------------------------------------------------------
MUC = "http://jabber.org/protocol/muc"                   # XEP-0045
MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
MUC_OWNER = "http://jabber.org/protocol/muc#owner"
MUC_UNIQUE = "http://jabber.org/protocol/muc#unique"
MUC_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
MUC_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
MUC_REQUEST = "http://jabber.org/protocol/muc#request"
MUC_REGISTER = "http://jabber.org/protocol/muc#register"
MUC_STABLE_ID = "http://jabber.org/protocol/muc#stable_id"
MUC_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"   # XEP-0410
OCCUPANT_ID = "urn:xmpp:occupant-id:0"                   # XEP-0421
MODERATE_0 = "urn:xmpp:message-moderate:0"              # XEP-0425
MODERATE = "urn:xmpp:message-moderate:1"


def q(ns: str, name: str) -> str:
    """The ElementTree tag ``{ns}name``."""
    return f"{{{ns}}}{name}"
