"""Loader: statements -> :class:`Config`, following ``Include``.

Semantics (Prosody's, where Prosody is sensible):

* Options before the first ``VirtualHost``/``Component`` are global; after a host line
  they belong to that host until the next host line.
* ``VirtualHost "d"`` (alias ``Host``), ``Component "d" "module"`` (internal component),
  ``Component "d"`` (external XEP-0114 component). The table forms
  ``VirtualHost "d" { opt = v }`` / ``Component "d" "muc" { ... }`` set options on the
  host and return to the global section, as in Prosody.
* ``Include "pattern"``: relative to the directory of the including file (as named, so a
  ``conf.d`` symlink keeps its own directory); globs are expanded in sorted order,
  hidden files skipped; no match is a warning; cycles are an error; a file already
  loaded is skipped with a warning. As in Prosody, an included file starts in the
  global section, and the including file carries on in its own section afterwards.
* A host may be declared more than once only if at most one declaration sets options
  (Debian's default ``prosody.cfg.lua`` declares ``localhost`` both in the main file and
  in ``conf.d/localhost.cfg.lua``); the declarations then merge, with a warning.
  Otherwise, and whenever the kinds (VirtualHost / Component, component module)
  differ, it is an error naming both places.
* ``name = nil`` removes the option from the current section.
* ``enabled = false`` disables a host (host value, else global value, else true).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from encodings.idna import nameprep
from typing import Any

from .lexer import ConfigError, ConfigWarning
from .parser import Assign, Call, Value, parse

__all__ = ["Setting", "HostConfig", "Config", "load_config", "parse_config_text"]


@dataclass(frozen=True)
class Setting:
    """An option's value and where it was set. ``items`` maps a table value's list
    index / dict key to the (line, col) of that item."""

    value: Any
    file: str
    line: int
    col: int
    items: dict = field(default_factory=dict, compare=False, repr=False)

    def item_where(self, key: Any) -> tuple[str, int, int]:
        """(file, line, col) of one item of a table value (the setting's own place
        if unknown)."""
        line, col = self.items.get(key, (self.line, self.col))
        return self.file, line, col

    @property
    def location(self) -> str:
        """``file:line:col`` of the setting."""
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class _Declaration:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class HostConfig:
    name: str
    kind: str                      # "virtualhost" | "component"
    component_module: str | None   # "muc", ...; None for a VirtualHost or an external component
    file: str
    line: int
    col: int
    options: dict[str, Setting] = field(default_factory=dict)
    enabled: bool = True
    declarations: list[_Declaration] = field(default_factory=list, repr=False)

    @property
    def is_external(self) -> bool:
        """An external (XEP-0114) component."""
        return self.kind == "component" and self.component_module is None

    def describe(self) -> str:
        if self.kind == "virtualhost":
            return f"VirtualHost '{self.name}'"
        if self.component_module:
            return f"Component '{self.name}' \"{self.component_module}\""
        return f"Component '{self.name}' (external)"


@dataclass
class Config:
    path: str
    globals: dict[str, Setting] = field(default_factory=dict)
    hosts: dict[str, HostConfig] = field(default_factory=dict)
    warnings: list[ConfigWarning] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, main first

    def _host(self, host: str) -> HostConfig:
        try:
            return self.hosts[host]
        except KeyError:
            raise KeyError(f"host {host!r} is not declared in {self.path}") from None

    def where(self, name: str, host: str | None = None) -> Setting | None:
        """The Setting that applies to ``name`` for ``host`` (the host's own, else the
        global one), or None. Raises KeyError for an undeclared host."""
        if host is not None:
            s = self._host(host).options.get(name)
            if s is not None:
                return s
        return self.globals.get(name)

    def get(self, name: str, host: str | None = None, default: Any = None) -> Any:
        """The plain value of ``name`` for ``host`` (host, else global, else default)."""
        s = self.where(name, host)
        return default if s is None else s.value

    def virtual_hosts(self) -> list[HostConfig]:
        return [h for h in self.hosts.values() if h.kind == "virtualhost" and h.enabled]

    def components(self) -> list[HostConfig]:
        return [h for h in self.hosts.values() if h.kind == "component" and h.enabled]

    @property
    def config_dir(self) -> str:
        """Directory of the main file (the cwd for text parsed without a file)."""
        if self.path.startswith("<"):
            return os.getcwd()
        return os.path.dirname(os.path.abspath(self.path))

    def resolve_path(self, value: str) -> str:
        """A path option's value made absolute against the main file's directory
        (Prosody resolves ``certificates`` the same way)."""
        return os.path.normpath(os.path.join(self.config_dir, os.path.expanduser(value)))


# -- the loader -------------------------------------------------------------

_HOST_DIRECTIVES = {"VirtualHost": "virtualhost", "Host": "virtualhost", "host": "virtualhost",
                    "Component": "component", "component": "component"}
_INCLUDE_DIRECTIVES = {"Include", "include"}


class _Loader:
    def __init__(self, cfg: Config, environ=None):
        self.cfg = cfg
        self.environ = environ
        self.stack: list[tuple[str, str]] = []   # (realpath, path as named)
        self.loaded: dict[str, str] = {}         # realpath -> path as named
        self.decls_with_options: set[_Declaration] = set()

    def warn(self, file: str, line: int, col: int, message: str, level: str = "warning") -> None:
        self.cfg.warnings.append(ConfigWarning(file, line, col, message, level))

    # -- files ----------------------------------------------------------------
    def load_file(self, path: str) -> None:
        real = os.path.realpath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError(path, 0, 0, f"cannot read configuration file: {e.strerror or e}") \
                from None
        text = _decode(data, path)
        self.run_text(text, path, os.path.dirname(path) or ".", real)

    def run_text(self, text: str, file: str, base_dir: str, real: str | None = None,
                 include_site: tuple[str, int, int, HostConfig | None] | None = None) -> None:
        statements = parse(text, file, self.environ)
        key = real or f"<text:{file}>"
        self.stack.append((key, file))
        self.loaded[key] = file
        self.cfg.files.append(file)
        try:
            self.run(statements, file, base_dir, include_site)
        finally:
            self.stack.pop()

    # -- statements ----------------------------------------------------------
    def run(self, statements, file: str, base_dir: str, include_site) -> None:
        current: HostConfig | None = None          # None = global section
        decl: _Declaration | None = None           # the declaration opening `current`
        for st in statements:
            if isinstance(st, Assign):
                if current is None and include_site is not None and include_site[3] is not None:
                    inc_file, inc_line, _, inc_host = include_site
                    self.warn(file, st.line, st.col,
                              f"option '{st.name}' is global: an included file starts in the "
                              f"global section (as in Prosody), although the Include at "
                              f"{inc_file}:{inc_line} is inside {inc_host.describe()}")
                self.assign(current, decl, st.name, st.value, file, st.line, st.col)
            elif st.func in _HOST_DIRECTIVES:
                current, decl, table = self.declare_host(st, file)
                if table is not None:   # VirtualHost "x" { ... }: set, then back to global
                    self.set_table(current, decl, table, file)
                    current, decl = None, None
            elif st.func in _INCLUDE_DIRECTIVES:
                self.include(st, file, base_dir, current)
            elif st.func in ("RunScript", "require", "dofile", "loadfile"):
                raise ConfigError(file, st.line, st.col, f"'{st.func}' is not supported: "
                                  f"xmppd does not run Lua code from its configuration")
            else:
                raise ConfigError(file, st.line, st.col, f"unknown directive '{st.func}' "
                                  f"(expected VirtualHost, Component or Include, or "
                                  f"'{st.func} = value' to set an option)")

    def assign(self, host: HostConfig | None, decl: _Declaration | None, name: str,
               value: Value, file: str, line: int, col: int) -> None:
        section = self.cfg.globals if host is None else host.options
        if host is not None:
            self.check_redeclaration(host, decl)
        old = section.get(name)
        if old is not None:
            where = "globally" if host is None else f"in {host.describe()}"
            self.warn(file, line, col, f"option '{name}' is set again {where}; this replaces "
                      f"the value set at {old.location}")
        if value.value is None:
            section.pop(name, None)
            return
        section[name] = Setting(value.value, file, line, col,
                                {k: p for k, p in value.items.items()})

    def set_table(self, host: HostConfig, decl: _Declaration, table: Value, file: str) -> None:
        if not isinstance(table.value, (dict, list)) or (isinstance(table.value, list)
                                                         and table.value):
            raise ConfigError(file, table.line, table.col,
                              f"the options table of {host.describe()} must hold "
                              f"'name = value' items")
        if isinstance(table.value, dict):
            for k, v in table.value.items():
                if not isinstance(k, str):
                    line, col = table.items.get(k, (table.line, table.col))
                    raise ConfigError(file, line, col, f"the options table of {host.describe()} "
                                      f"must hold 'name = value' items")
                line, col = table.items.get(k, (table.line, table.col))
                self.assign(host, decl, k, Value(v, line, col), file, line, col)

    def check_redeclaration(self, host: HostConfig, decl: _Declaration | None) -> None:
        """Error if another declaration of ``host`` already carries options."""
        if decl is None:
            return
        if decl not in self.decls_with_options:
            self.decls_with_options.add(decl)
            for other in host.declarations:
                if other != decl and other in self.decls_with_options:
                    first, second = sorted((other, decl), key=host.declarations.index)
                    raise ConfigError(second.file, second.line, second.col,
                                      f"{host.describe()} is declared twice with options: "
                                      f"here and at {first}; declare each host once")

    def declare_host(self, st: Call, file: str) -> tuple[HostConfig, _Declaration, Value | None]:
        kind = _HOST_DIRECTIVES[st.func]
        groups = list(st.groups)
        if not groups or len(groups[0]) != 1 or not isinstance(groups[0][0].value, str):
            raise ConfigError(file, st.line, st.col, f"expected a host name string after "
                              f"'{st.func}', e.g. {st.func} \"example.com\"")
        name_v = groups.pop(0)[0]
        name = _prep_host(name_v, file)
        module: str | None = None
        table: Value | None = None
        if kind == "virtualhost":
            if groups and isinstance(groups[0][0].value if groups[0] else None, str):
                g = groups[0][0]
                raise ConfigError(file, g.line, g.col, f"VirtualHost does not take a module "
                                  f"name ('{g.value}' given for '{name}'); did you mean "
                                  f"Component \"{name}\" \"{g.value}\"?")
        elif groups and len(groups[0]) == 1 and isinstance(groups[0][0].value, str):
            module = groups.pop(0)[0].value
            if not module:
                raise ConfigError(file, st.line, st.col, "component module name is empty")
        if groups and len(groups[0]) == 1 and isinstance(groups[0][0].value, (dict, list)):
            table = groups.pop(0)[0]
        if groups:
            g = groups[0][0] if groups[0] else None
            line, col = (g.line, g.col) if g else (st.line, st.col)
            raise ConfigError(file, line, col, f"unexpected extra argument after "
                              f"{st.func} \"{name}\"")

        decl = _Declaration(file, st.line, st.col)
        host = self.cfg.hosts.get(name)
        if host is None:
            host = HostConfig(name, kind, module, file, st.line, st.col)
            self.cfg.hosts[name] = host
        else:
            first = host.declarations[0]
            if host.kind != kind or host.component_module != module:
                new = HostConfig(name, kind, module, file, st.line, st.col)
                raise ConfigError(file, st.line, st.col, f"{new.describe()} clashes with "
                                  f"{host.describe()} declared at {first}")
            self.warn(file, st.line, st.col, f"{host.describe()} is already declared at "
                      f"{first}; the two declarations are merged")
        host.declarations.append(decl)
        return host, decl, table

    def include(self, st: Call, file: str, base_dir: str, current: HostConfig | None) -> None:
        if len(st.groups) != 1 or len(st.groups[0]) != 1 or not isinstance(st.groups[0][0].value, str):
            raise ConfigError(file, st.line, st.col, f"expected one file name or pattern "
                              f"string after '{st.func}', e.g. Include \"conf.d/*.cfg.lua\"")
        pattern = os.path.expanduser(st.groups[0][0].value)
        if "\0" in pattern:
            raise ConfigError(file, st.line, st.col, f"'{st.func}': a file name cannot contain "
                              f"a NUL character")
        full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
        if glob.has_magic(full):
            paths = sorted(p for p in glob.glob(full)
                           if not os.path.basename(p).startswith(".") and not os.path.isdir(p))
            if not paths:
                self.warn(file, st.line, st.col, f"Include \"{pattern}\" matches no file")
                return
        else:
            paths = [full]
        site = (file, st.line, st.col, current)
        for path in paths:
            real = os.path.realpath(path)
            chain = [named for key, named in self.stack]
            if real in (key for key, _ in self.stack):
                raise ConfigError(file, st.line, st.col, "include cycle: "
                                  + " -> ".join(chain + [path]))
            if real in self.loaded:
                self.warn(file, st.line, st.col, f"'{path}' is already loaded (as "
                          f"'{self.loaded[real]}'); not loading it again")
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                reason = e.strerror or str(e)
                if os.path.islink(path) and not os.path.exists(path):
                    reason = f"broken symbolic link to '{os.readlink(path)}'"
                raise ConfigError(file, st.line, st.col,
                                  f"cannot read included file '{path}': {reason}") from None
            self.run_text(_decode(data, path), path, os.path.dirname(path) or ".", real, site)

    # -- end -------------------------------------------------------------------
    def finish(self) -> None:
        cfg = self.cfg
        for host in cfg.hosts.values():
            s = cfg.where("enabled", host.name)
            if s is None:
                host.enabled = True
            elif isinstance(s.value, bool):
                host.enabled = s.value
            else:
                raise ConfigError(s.file, s.line, s.col, "enabled: expected true or false")


def _prep_host(v: Value, file: str) -> str:
    name = v.value
    bad = ConfigError(file, v.line, v.col, f"'{name}' is not a valid host name")
    if not name or any(ch.isspace() or ch in "@/\"'" for ch in name):
        raise bad
    try:
        labels = [nameprep(label) for label in name.rstrip(".").split(".")]
    except UnicodeError:
        raise bad from None
    if any(not label for label in labels):
        raise bad
    return ".".join(labels)


def _decode(data: bytes, file: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        head = data[:e.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise ConfigError(file, line, col, "the file is not valid UTF-8") from None


def load_config(path: str | os.PathLike, *, environ=None) -> Config:
    """Load the main configuration file and everything it includes.

    Raises :class:`ConfigError` (an unreadable main file gives line 0).
    """
    path = os.fspath(path)
    cfg = Config(path=path)
    loader = _Loader(cfg, environ)
    loader.load_file(path)
    loader.finish()
    return cfg


def parse_config_text(text: str, filename: str = "<string>", base_dir: str | None = None,
                      *, environ=None) -> Config:
    """Parse configuration from a string; ``Include`` is relative to ``base_dir``
    (default: the directory of ``filename`` if it names a file, else the cwd)."""
    if base_dir is None:
        base_dir = os.getcwd() if filename.startswith("<") else (os.path.dirname(filename) or ".")
    cfg = Config(path=filename)
    loader = _Loader(cfg, environ)
    real = None if filename.startswith("<") else os.path.realpath(filename)
    loader.run_text(text, filename, base_dir, real)
    loader.finish()
    return cfg
