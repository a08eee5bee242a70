# xmppd — the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= xmppd.cfg.lua

.PHONY: run test install deps system-deps browser-deps node-deps check docs bench bench-storage bench-micro fuzz soak deb deb-test clean distclean

# A virtualenv with xmppd and its test dependencies, rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y python3-venv >/dev/null; else sudo apt-get install -y python3-venv; fi; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/.installed

# Debian packages the test suite uses: Prosody (its default config is a test input,
# and its server a federation peer; with lua-dbi-sqlite3 its SQL storage is an import
# source), ejabberd (a federation peer and an export source), coturn (the TURN server
# that must accept turn_external's credentials), fail2ban and logrotate (they read and
# rotate the daemon's log), pebble (the ACME CA the acme module gets its certificates
# from), postgresql (the storage = "sql" backend: the tests initdb their own cluster,
# its binaries are all they use). Installed when we are root.
system-deps:
	@if ! command -v prosody >/dev/null 2>&1 && [ ! -f /etc/prosody/prosody.cfg.lua ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null) \
	      || echo "warning: could not install prosody; tests that need it will be skipped"; \
	    systemctl stop prosody >/dev/null 2>&1 || service prosody stop >/dev/null 2>&1 || true; \
	  else \
	    echo "note: prosody is not installed (apt-get install prosody); tests that need it will be skipped"; \
	  fi; \
	fi
	@if ! dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua-dbi-sqlite3 >/dev/null) \
	      || echo "warning: could not install lua-dbi-sqlite3; the Prosody SQL import test will be skipped"; \
	  else \
	    echo "note: lua-dbi-sqlite3 is not installed (Prosody's SQLite storage); its import test will be skipped"; \
	  fi; \
	fi
	@if ! command -v ejabberdctl >/dev/null 2>&1 && [ ! -x /usr/sbin/ejabberdctl ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ejabberd >/dev/null) \
	      || echo "warning: could not install ejabberd; tests that need it will be skipped"; \
	    systemctl stop ejabberd >/dev/null 2>&1 || service ejabberd stop >/dev/null 2>&1 || true; \
	  else \
	    echo "note: ejabberd is not installed (apt-get install ejabberd); tests that need it will be skipped"; \
	  fi; \
	fi
	@if ! command -v turnserver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null) \
	      || echo "warning: could not install coturn; tests that need it will be skipped"; \
	  else \
	    echo "note: coturn is not installed (apt-get install coturn); tests that need it will be skipped"; \
	  fi; \
	fi
	@if ! command -v fail2ban-regex >/dev/null 2>&1 || ! command -v logrotate >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fail2ban logrotate >/dev/null) \
	      || echo "warning: could not install fail2ban and logrotate; their tests will be skipped"; \
	    systemctl stop fail2ban >/dev/null 2>&1 || true; \
	  else \
	    echo "note: fail2ban or logrotate is not installed (apt-get install fail2ban logrotate); their tests will be skipped"; \
	  fi; \
	fi
	@if ! command -v pebble >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null) \
	      || echo "warning: could not install pebble; the ACME tests will be skipped"; \
	  else \
	    echo "note: pebble is not installed (apt-get install pebble); the ACME tests will be skipped"; \
	  fi; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "warning: could not install postgresql; the PostgreSQL storage tests will be skipped"; \
	    systemctl stop postgresql >/dev/null 2>&1 || service postgresql stop >/dev/null 2>&1 || true; \
	  else \
	    echo "note: postgresql is not installed (apt-get install postgresql); the PostgreSQL storage tests will be skipped"; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium; the browser tests will be skipped"; \
	  else \
	    echo "note: chromium is not installed (apt-get install chromium chromium-driver); the browser tests will be skipped"; \
	  fi; \
	fi

# The web client the browser tests run (tests/browser), from npm, into var/npm.
CONVERSE_VERSION ?= 14.0.0
browser-deps: var/npm/node_modules/converse.js/package.json
var/npm/node_modules/converse.js/package.json:
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p var/npm && npm install -q --prefix var/npm --no-audit --no-fund --ignore-scripts \
	    converse.js@$(CONVERSE_VERSION) >/dev/null \
	    || echo "warning: could not install converse.js from npm; the browser tests will be skipped"; \
	else \
	  echo "note: npm is not installed (apt-get install npm); the browser tests will be skipped"; \
	fi

# xmpp.js (npm @xmpp/client), the Node client library the SASL2/Bind 2/FAST test
# drives (tests/e2e/test_sasl2_xmppjs.py), into var/npm-xmppjs; it needs Node >= 20.10.
XMPPJS_VERSION ?= 0.14.0
node-deps: var/npm-xmppjs/node_modules/@xmpp/client/package.json
var/npm-xmppjs/node_modules/@xmpp/client/package.json:
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p var/npm-xmppjs && npm install -q --prefix var/npm-xmppjs --no-audit --no-fund --ignore-scripts \
	    @xmpp/client@$(XMPPJS_VERSION) >/dev/null \
	    || echo "warning: could not install @xmpp/client from npm; the xmpp.js test will be skipped"; \
	else \
	  echo "note: npm is not installed (apt-get install npm); the xmpp.js test will be skipped"; \
	fi

# The server on this checkout's configuration, on loopback unless told otherwise:
# `make run RUN_INTERFACES='"*", "::"' RUN_C2S_PORT=15222`. The log's "listening on"
# line says what it really listens on.
RUN_INTERFACES ?= "127.0.0.1", "::1"
RUN_C2S_PORT ?= 5222
RUN_TLS_PORT ?= 5223
RUN_S2S_PORT ?= 5269
run: $(BIN)/.installed
	@echo "xmppd: serving the domains enabled in conf.d/ (localhost) from $(CONFIG), on $(RUN_INTERFACES)."
	@echo "  add a user:   $(BIN)/xmppctl --config $(CONFIG) adduser you@localhost"
	@echo "  connect:      any XMPP client to you@localhost on port $(RUN_C2S_PORT) (STARTTLS) or $(RUN_TLS_PORT) (direct TLS);"
	@echo "                the certificate is self-signed (var/certs/localhost.crt): accept it in the client."
	$(BIN)/xmppd --config $(CONFIG) --set 'interfaces = { $(RUN_INTERFACES) }' \
	  --set 'c2s_ports = { $(RUN_C2S_PORT) }' --set 'c2s_direct_tls_ports = { $(RUN_TLS_PORT) }' \
	  --set 's2s_ports = { $(RUN_S2S_PORT) }'

# The end-to-end tests that run a second time with the data in PostgreSQL (storage = "sql";
# tests/pg.py starts a throwaway cluster): messages, roster, offline, archives, PEP, MUC.
SQL_E2E ?= tests/e2e/test_c2s.py tests/e2e/test_roster.py tests/e2e/test_offline.py \
  tests/e2e/test_mam.py tests/e2e/test_pep.py tests/e2e/test_smacks.py \
  tests/e2e/muc/test_basic.py tests/e2e/muc/test_persistence.py

test: $(BIN)/.installed system-deps browser-deps node-deps
	$(BIN)/pytest -q
	XMPPD_TEST_STORAGE=sql $(BIN)/pytest -q $(SQL_E2E)

check: $(BIN)/.installed
	$(BIN)/xmppctl --config $(CONFIG) check config

# Regenerate the option tables in docs/ from the option declarations in the code, and
# docs/compliance.md (XEP-0479) from tools/compliance.toml and what the code advertises.
docs: $(BIN)/.installed
	$(BIN)/python tools/gen_option_docs.py
	$(BIN)/python tools/gen_compliance.py

# xmppd against Prosody (and ejabberd when installed), each pinned to CPU 0, the load
# generator on CPU 1; `make bench BENCH_ARGS="--quick --scenarios msg100"` for a short run.
BENCH_ARGS ?=
bench: $(BIN)/.installed system-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# SQLite and PostgreSQL side by side (and SQLite with an fsync per commit, PostgreSQL's
# durability): routing, a MUC room with its archive, MAM queries over a large archive.
# `make bench-storage BENCH_ARGS=` for the full sizes (10 million archived messages).
bench-storage: $(BIN)/.installed system-deps
	$(BIN)/python bench/run.py --scenarios storage --servers xmppd,xmppd_safe,xmppd_pg $(or $(BENCH_ARGS),--quick)

# Parse/serialize micro-benchmark of xmppd.stream alone.
bench-micro: $(BIN)/.installed
	$(BIN)/python bench/micro_stream.py

# Coverage-guided fuzzing (atheris/libFuzzer) of everything that reads untrusted
# bytes: each target for FUZZ_TIME seconds; `make fuzz FUZZ_TARGETS=stanzas FUZZ_TIME=3600`.
# New inputs go to var/fuzz/<corpus>, findings to var/fuzz/findings/ (see docs/security.md).
FUZZ_TIME ?= 300
FUZZ_TARGETS ?= stream_parser config_parser sasl jid stanzas
fuzz: $(BIN)/.installed
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz/$$t.py for $(FUZZ_TIME)s"; \
	  $(BIN)/python fuzz/$$t.py -max_total_time=$(FUZZ_TIME) -print_final_stats=1 || exit 1; \
	done

# The server under mixed traffic with misbehaving clients for SOAK_TIME seconds,
# sampling its memory, file descriptors and latency (docs/reliability.md).
SOAK_TIME ?= 3600
SOAK_ARGS ?=
soak: $(BIN)/.installed
	$(BIN)/python bench/soak.py --duration $(SOAK_TIME) $(SOAK_ARGS)

# The Debian package, into var/deb/ (contrib/deb/build: a staged tree packed by
# dpkg-deb; the PyPI wheels Debian 12 lacks are pinned by hash in contrib/deb/vendor.txt).
# As root, installs the tools it needs (dpkg-dev's strip in binutils, lintian).
DEB_DIR ?= var/deb
deb: $(BIN)/.installed
	@if ! command -v strip >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils lintian >/dev/null; \
	  else \
	    echo "note: make deb needs binutils (strip) and lintian: apt-get install binutils lintian"; \
	  fi; \
	fi
	contrib/deb/build $(DEB_DIR) $(BIN)/python
	@if command -v lintian >/dev/null 2>&1; then lintian --fail-on error $(DEB_DIR)/xmppd_*.deb; fi

# Root only: installs that package here, runs xmppd from it (systemd's unit when
# systemd runs, else as the xmppd user), logs in with a real client, rotates the
# log, runs the fail2ban filter, then purges all it installed (contrib/deb/test).
deb-test: deb
	contrib/deb/test $$(ls -t $(DEB_DIR)/xmppd_*.deb | head -1)

clean:
	rm -rf var .pytest_cache build *.egg-info

distclean: clean
	rm -rf $(VENV)
