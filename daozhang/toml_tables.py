"""Read a TOML configuration file and check its tables and keys: the one
loader behind agent.toml (and a legacy mqtt.toml), the merchant profile,
board files, settlement mappings and backend.toml.

Every fault in such a file is a ConfigFileError naming the file, the key
(`section.key`, or `(file)` / `(syntax)` / `(top)`) and what is wrong, so
the operator can go straight to the line: the CLI prints it as one line and
exits 2.  What each key means stays with its loader; this module only knows
tables, keys and TOML.
"""

import tomllib

from daozhang.agent.core.errors import LocalError


class ConfigFileError(LocalError):
    """A configuration file the operator must fix: `path: key: message`."""

    def __init__(self, path, key, message):
        super().__init__("%s: %s: %s" % (path, key, message))
        self.path = path
        self.key = key


def read_toml(path):
    """The parsed document, or ConfigFileError for an unreadable file or bad TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigFileError(path, "(file)", "cannot read: %s" % (exc.strerror or exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(path, "(syntax)", "not valid TOML: %s" % exc) from None


def check_tables(path, data, tables, top_keys=()):
    """Refuse an unknown table or key.  `tables` maps each allowed table to
    the set of its allowed keys (None: any key, its loader checks them);
    `top_keys` are the plain values allowed beside the tables."""
    if not isinstance(data, dict):
        raise ConfigFileError(path, "(top)", "expected a TOML document")
    for name, value in data.items():
        if name in top_keys and name not in tables:
            continue
        if name not in tables:
            what = "table" if isinstance(value, dict) else "key"
            raise ConfigFileError(path, name, "unknown %s (allowed: %s)"
                                  % (what, ", ".join(sorted(set(tables) | set(top_keys)))))
        if not isinstance(value, dict):
            raise ConfigFileError(path, name, "expected a table [%s]" % name)
        if tables[name] is not None:
            check_keys(path, name + ".", value, tables[name])


def check_keys(path, prefix, table, allowed):
    """Refuse the first key of `table` (named `prefix` + key) not in `allowed`."""
    for key in table:
        if key not in allowed:
            raise ConfigFileError(path, prefix + key, "unknown key (allowed: %s)"
                                  % ", ".join(sorted(allowed)))
