-- xmppd main configuration file.
--
-- Syntax and option names are Prosody's: an existing prosody.cfg.lua carries
-- over. The file is parsed, never executed. `xmppctl check config` tells what
-- is wrong and which options xmppd ignores.
--
-- Domains live in conf.avail/DOMAIN.cfg.lua and are enabled by a symlink in
-- conf.d/ (`xmppctl enable DOMAIN` makes it).

-- Accounts allowed to administer the server (the handbook's first step).
admins = { }

-- Feature modules for every VirtualHost (a host may override the list).
modules_enabled = {
    -- The essentials
    "roster";        -- Contact lists and subscriptions (RFC 6121)
    "disco";         -- Service discovery (XEP-0030)
    "dialback";      -- Federation with servers whose certificates can't be checked (XEP-0220)
    "offline";       -- Messages for offline users are kept (XEP-0160)
    -- Account services
    "vcard";         -- Profiles (XEP-0054)
    "private";       -- Private XML storage (XEP-0049)
    "blocklist";     -- Blocking (XEP-0191)
    "lastactivity";  -- Last activity (XEP-0012)
    "register";      -- Password change, account removal; sign-up if allow_registration (XEP-0077)
    -- Modern multi-device clients
    "carbons";       -- Message carbons (XEP-0280)
    "mam";           -- Message archive (XEP-0313)
    "pep";           -- Personal eventing: avatars, OMEMO keys, bookmarks (XEP-0163)
    "smacks";        -- Stream management (XEP-0198)
    "csi";           -- Client state indication (XEP-0352)
    "cloud_notify";  -- Push notifications (XEP-0357)
    -- Nice to have
    "ping";          -- XMPP Ping (XEP-0199)
    "version";       -- Software version (XEP-0092)
    "time";          -- Entity time (XEP-0202)
    "server_contact_info"; -- Contact addresses (XEP-0157)
    -- Administration
    "admin_adhoc";   -- The admins' commands in their client: users, announcements, MOTD (XEP-0133)
}

-- Where accounts and other data are stored (SQLite database), relative to
-- this file. A Debian install uses /var/lib/xmppd.
data_path = "var"
storage = "sqlite"

-- Certificates: `ssl = { ... }` in a VirtualHost, or DOMAIN.crt/DOMAIN.key
-- in this directory. Without either, a self-signed one is generated on first
-- start under data_path/certs/.
certificates = "certs"

-- Client connections.
interfaces = { "*", "::" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { 5223 }
c2s_require_encryption = true

-- Server-to-server connections (federation with the public XMPP network).
s2s_ports = { 5269 }
-- Require valid certificates from remote servers; with false, servers with
-- self-signed certificates are accepted through dialback.
s2s_secure_auth = true

log = {
    info = "*console";
}

Include "conf.d/*.cfg.lua"
