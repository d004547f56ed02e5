"""How an acquirer's settlement file is laid out: the column mapping (TOML).

docs/SPEC.md §7.9.3.  The default `Mapping` is the
documented layout (7.x.1); `load_mapping(path)` reads another acquirer's
from a TOML file.  The reader (settlement_csv.py) asks the mapping for
everything layout-specific: the header name of each of our columns, the
amount scale, how times are written, how kinds are spelled.
"""

import codecs
import zoneinfo

from daozhang.agent.core.errors import LocalError
from daozhang.agent.toml_file import read_toml

# Our columns, in the order the spec lists them.
COLUMNS = ("acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "txn_time", "kind",
           "card", "amount", "fee", "settled_amount", "settled_at", "mcc", "region")
REQUIRED_COLUMNS = ("acquirer_ref", "amount", "fee", "settled_amount", "settled_at")
KINDS = ("sale", "refund", "void", "reversal", "preauth_completion")
MAX_SCALE = 4

_TABLES = {"csv": {"encoding", "delimiter", "skip_lines"}, "columns": set(COLUMNS),
           "amounts": {"scale"}, "times": {"format", "timezone"}, "kinds": None,
           "fixed": set(COLUMNS)}


class MappingError(LocalError):
    """The operator's mapping file is wrong: names the file, key and fault."""

    def __init__(self, path, key, message):
        super().__init__("%s: %s: %s" % (path, key, message))
        self.path = path
        self.key = key


class Mapping:
    """A settlement file layout.  Attributes (all set, defaults filled in):
    encoding, delimiter, skip_lines, header (our column -> file header text),
    scale, time_format (None: RFC 3339), tz (zoneinfo or None), kinds
    (file text -> our kind), fixed (our column -> raw text), path."""

    def __init__(self, encoding="utf-8", delimiter=",", skip_lines=0, header=None, scale=0,
                 time_format=None, tz=None, kinds=None, fixed=None, path="<default layout>"):
        self.encoding = encoding
        self.delimiter = delimiter
        self.skip_lines = skip_lines
        self.header = dict((c, c) for c in COLUMNS)
        self.header.update(header or {})
        self.scale = scale
        self.time_format = time_format
        self.tz = tz
        self.kinds = dict(kinds or {})
        self.fixed = dict(fixed or {})
        self.path = path

    @classmethod
    def default(cls):
        return cls()

    def describe(self):
        return "the default layout" if self.path == "<default layout>" else "mapping " + self.path


def _text(path, key, value, low=1, high=200):
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise MappingError(path, key, "expected text of %d to %d characters, got %r"
                           % (low, high, value))
    return value


def _int(path, key, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MappingError(path, key, "expected an integer %d..%d, got %r" % (low, high, value))
    return value


def mapping_from_dict(data, path="<mapping>"):
    """A parsed TOML document -> Mapping; raises MappingError."""
    if not isinstance(data, dict):
        raise MappingError(path, "(top)", "expected a TOML document")
    for name, table in data.items():
        if name not in _TABLES:
            raise MappingError(path, name, "unknown table (expected one of %s)"
                               % ", ".join(sorted(_TABLES)))
        if not isinstance(table, dict):
            raise MappingError(path, name, "expected a table [%s]" % name)
        allowed = _TABLES[name]
        if allowed is not None:
            for key in table:
                if key not in allowed:
                    raise MappingError(path, "%s.%s" % (name, key), "unknown key (expected one "
                                       "of %s)" % ", ".join(sorted(allowed)))
    csv_t = data.get("csv", {})
    encoding = _text(path, "csv.encoding", csv_t.get("encoding", "utf-8"), 1, 40)
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise MappingError(path, "csv.encoding", "unknown encoding %r (e.g. utf-8, gb18030)"
                           % encoding) from None
    delimiter = _text(path, "csv.delimiter", csv_t.get("delimiter", ","), 1, 1)
    if delimiter in "\"\r\n":
        raise MappingError(path, "csv.delimiter", "a quote or line break cannot separate fields")
    skip = _int(path, "csv.skip_lines", csv_t.get("skip_lines", 0), 0, 1000)

    header = {}
    seen = {}
    for ours, theirs in data.get("columns", {}).items():
        header[ours] = _text(path, "columns." + ours, theirs).strip()
    for ours in COLUMNS:
        theirs = header.get(ours, ours)
        if theirs in seen:
            raise MappingError(path, "columns." + ours, "file column %r is already %s"
                               % (theirs, seen[theirs]))
        seen[theirs] = ours

    scale = _int(path, "amounts.scale", data.get("amounts", {}).get("scale", 0), 0, MAX_SCALE)

    times = data.get("times", {})
    time_format, tz = None, None
    if "format" in times:
        time_format = _text(path, "times.format", times["format"], 2, 100)
        if "%" not in time_format:
            raise MappingError(path, "times.format", "expected a strptime format such as "
                               "'%%Y-%%m-%%d %%H:%%M:%%S', got %r" % time_format)
    if "timezone" in times:
        name = _text(path, "times.timezone", times["timezone"], 1, 64)
        try:
            tz = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise MappingError(path, "times.timezone", "expected an IANA zone such as "
                               "Asia/Shanghai, got %r" % name) from None
    if time_format is not None and tz is None and "%z" not in time_format:
        raise MappingError(path, "times.timezone", "missing: times.format has no %z, so the "
                           "zone of its wall times must be given")
    if tz is not None and time_format is None:
        raise MappingError(path, "times.timezone", "only used with times.format (RFC 3339 "
                           "times carry their own offset)")

    kinds = {}
    for theirs, ours in data.get("kinds", {}).items():
        if ours not in KINDS:
            raise MappingError(path, "kinds." + theirs, "expected one of %s, got %r"
                               % ("|".join(KINDS), ours))
        kinds[theirs.strip()] = ours

    fixed = {}
    for ours, value in data.get("fixed", {}).items():
        fixed[ours] = _text(path, "fixed." + ours, value, 1, 64).strip()
    mapping = Mapping(encoding, delimiter, skip, header, scale, time_format, tz, kinds, fixed,
                      path)
    # A fixed value is checked once here, with the row rules, not once per row.
    # Imported here: settlement_csv imports this module at its top.
    from daozhang.host_tools.settlement_csv import RowProblem, parse_field
    for ours, value in fixed.items():
        try:
            parse_field(ours, value, mapping)
        except RowProblem as exc:
            raise MappingError(path, "fixed." + ours, str(exc)) from None
    return mapping


def load_mapping(path):
    """Read and validate a mapping TOML file."""
    data = read_toml(path, MappingError)
    return mapping_from_dict(data, str(path))
