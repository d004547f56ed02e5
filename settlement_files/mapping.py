"""How an acquirer's settlement file is laid out: the map language (TOML).

docs/SPEC.md §7.9.3.  `Mapping.default()` is the documented CSV layout
(§7.9.1); `load_mapping(path)` reads another one; the built-in formats
(settlement_files/formats/) are mappings too, written in the same language.

    [file]            type = "csv" | "xlsx" | "xls" | "fixed"; encoding; delimiter;
                      skip_lines; skip_rows (prefixes of banner, title, 合计 rows);
                      end_at (prefixes that end the table: a summary block);
                      strip (decoration characters, e.g. "`\\t"); na (cells that mean
                      empty, e.g. "*"); sheet; widths + separator + names (fixed-width,
                      counted in bytes of the encoding); settled_at ("file_date" or RFC
                      3339); name_date (a regex with yyyy|yy, mm, dd groups on the name)
    [columns]         our column = a file column, a list (first non-empty) or a rule
                      table (settlement_files/columns.py)
    [amounts]         scale, round: the money columns' defaults
    [times]           format, timezone, year ("file_date": MMDD times take the
                      file's year, with the December/January rollover)
    [kinds]           file text -> our kind
    [fixed]           our column -> the same text on every row (old form)
"""

import codecs
import re
import zoneinfo

from daozhang.toml_tables import check_tables, read_toml
from daozhang.settlement_files.columns import (
    COLUMNS, KINDS, MONEY, REQUIRED_COLUMNS, TIMES, ColumnRule, rule_from_toml)
from daozhang.settlement_files.errors import MappingError

FILE_TYPES = ("csv", "xlsx", "xls", "fixed")
_TABLES = {"file": {"type", "encoding", "delimiter", "skip_lines", "skip_rows", "end_at", "strip",
                    "na", "sheet", "widths", "separator", "names", "settled_at", "name_date"},
           "csv": {"encoding", "delimiter", "skip_lines"}, "columns": None,
           "amounts": {"scale", "round"}, "times": {"format", "timezone", "year"},
           "kinds": None, "fixed": set(COLUMNS)}
DEFAULT_NAME_DATE = r"(?<![0-9])(?P<yyyy>20[0-9]{2})-?(?P<mm>[01][0-9])-?(?P<dd>[0-3][0-9])(?![0-9])"


class Mapping:
    """A settlement file layout; every attribute set, defaults filled in."""

    def __init__(self, path="<default layout>"):
        self.path = path
        self.name = None                # a built-in format's name
        self.file_type = "csv"
        self.encoding = "utf-8"
        self.delimiter = ","
        self.skip_lines = 0
        self.skip_rows = ()
        self.end_at = ()
        self.strip = " \t"
        self.na = ()
        self.sheet = None
        self.widths = None              # fixed-width: bytes per field
        self.separator = 0              # fixed-width: bytes between fields
        self.names = None               # fixed-width: a name per field
        self.settled_at = None          # None, "file_date" or Unix ms
        self.name_date = re.compile(DEFAULT_NAME_DATE)
        self.time_format = None
        self.tz = None
        self.year = None                # None or "file_date"
        self.kinds = {}
        self.rules = dict((c, ColumnRule(c, (c,), scale=0, rounding="refuse")) for c in COLUMNS)
        self.mask_finding = True

    @classmethod
    def default(cls):
        return cls()

    def describe(self):
        if self.name:
            return "format " + self.name
        return "the default layout" if self.path == "<default layout>" else "mapping " + self.path

    def needs_file_date(self):
        return self.settled_at == "file_date" or self.year == "file_date"


def _text(path, key, value, low=1, high=200):
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise MappingError(path, key, "expected text of %d to %d characters, got %r"
                           % (low, high, value))
    return value


def _int(path, key, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MappingError(path, key, "expected an integer %d..%d, got %r" % (low, high, value))
    return value


def _list(path, key, value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise MappingError(path, key, "expected text or a list of texts, got %r" % (value,))
    return tuple(value)


def _file_table(m, path, f, key):
    m.file_type = f.get("type", "csv")
    if m.file_type not in FILE_TYPES:
        raise MappingError(path, key + ".type", "expected one of %s, got %r"
                           % ("|".join(FILE_TYPES), m.file_type))
    encoding = _text(path, key + ".encoding", f.get("encoding", "utf-8"), 1, 40)
    try:
        m.encoding = codecs.lookup(encoding).name
    except LookupError:
        raise MappingError(path, key + ".encoding", "unknown encoding %r (e.g. utf-8, gb18030)"
                           % encoding) from None
    m.delimiter = _text(path, key + ".delimiter", f.get("delimiter", ","), 1, 1)
    if m.delimiter in "\"\r\n":
        raise MappingError(path, key + ".delimiter", "a quote or line break cannot separate fields")
    m.skip_lines = _int(path, key + ".skip_lines", f.get("skip_lines", 0), 0, 1000)
    m.skip_rows = _list(path, key + ".skip_rows", f.get("skip_rows", []))
    m.end_at = _list(path, key + ".end_at", f.get("end_at", []))
    m.strip = " \t" + _text(path, key + ".strip", f.get("strip", " "), 1, 20)
    m.na = _list(path, key + ".na", f.get("na", []))
    if "sheet" in f:
        m.sheet = _text(path, key + ".sheet", f["sheet"], 1, 100)
    if m.file_type == "fixed":
        widths = f.get("widths")
        if (not isinstance(widths, list) or not widths
                or not all(type(w) is int and 0 < w <= 10000 for w in widths)):
            raise MappingError(path, key + ".widths", "a fixed-width layout needs widths = a "
                               "list of field sizes in bytes")
        m.widths = tuple(widths)
        m.separator = _int(path, key + ".separator", f.get("separator", 0), 0, 8)
        names = _list(path, key + ".names", f.get("names", []))
        if len(names) != len(widths):
            raise MappingError(path, key + ".names", "expected %d names (one per width), got %d"
                               % (len(widths), len(names)))
        m.names = names
    if "settled_at" in f:
        value = f["settled_at"]
        if value != "file_date":
            from daozhang.settlement_files.values import parse_time
            from daozhang.settlement_files.errors import RowProblem
            try:
                value = parse_time(key + ".settled_at", _text(path, key + ".settled_at", value),
                                   None, None)
            except RowProblem as exc:
                raise MappingError(path, key + ".settled_at", "expected \"file_date\" or an "
                                   "RFC 3339 time: %s" % exc) from None
        m.settled_at = value
    if "name_date" in f:
        try:
            m.name_date = re.compile(_text(path, key + ".name_date", f["name_date"]))
        except re.error as exc:
            raise MappingError(path, key + ".name_date", "not a regex: %s" % exc) from None
        if not {"mm", "dd"} <= set(m.name_date.groupindex):
            raise MappingError(path, key + ".name_date", "needs named groups mm and dd (and "
                               "yyyy or yy)")


def _times_table(m, path, times):
    if "format" in times:
        m.time_format = _text(path, "times.format", times["format"], 2, 100)
        if "%" not in m.time_format:
            raise MappingError(path, "times.format", "expected a strptime format such as "
                               "'%%Y-%%m-%%d %%H:%%M:%%S', got %r" % m.time_format)
    if "timezone" in times:
        name = _text(path, "times.timezone", times["timezone"], 1, 64)
        try:
            m.tz = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise MappingError(path, "times.timezone", "expected an IANA zone such as "
                               "Asia/Shanghai, got %r" % name) from None
    if "year" in times:
        if times["year"] != "file_date":
            raise MappingError(path, "times.year", "expected \"file_date\", got %r"
                               % (times["year"],))
        m.year = "file_date"


def mapping_from_dict(data, path="<mapping>", name=None):
    """A parsed TOML document -> Mapping; raises MappingError."""
    check_tables(path, data, _TABLES)
    m = Mapping(path)
    m.name = name
    _file_table(m, path, dict(data.get("csv", {}), **data.get("file", {})),
                "file" if "file" in data else "csv")
    amounts = data.get("amounts", {})
    defaults = {"scale": _int(path, "amounts.scale", amounts.get("scale", 0), 0, 8),
                "round": amounts.get("round", "refuse")}
    _times_table(m, path, data.get("times", {}))
    if m.file_type == "fixed":
        m.rules = {}                    # nothing by name: the map says every column
    for ours, spec in data.get("columns", {}).items():
        m.rules[ours] = rule_from_toml(path, ours, spec, defaults)
    for ours, value in data.get("fixed", {}).items():
        m.rules[ours] = ColumnRule(ours, fixed=_text(path, "fixed." + ours, value, 1, 64).strip())
    for ours, rule in m.rules.items():
        if rule.scale is None:
            rule.scale = defaults["scale"]
        if rule.rounding is None:
            rule.rounding = defaults["round"]
        if ours in TIMES and rule.time_format is None:
            rule.time_format = m.time_format
    if any(r.time_format for c, r in m.rules.items() if c in TIMES):
        if m.tz is None and not all("%z" in (m.rules[c].time_format or "%z") for c in TIMES
                                    if c in m.rules):
            raise MappingError(path, "times.timezone", "missing: times.format has no %z, so the "
                               "zone of its wall times must be given")
    elif m.tz is not None:
        raise MappingError(path, "times.timezone", "only used with times.format (RFC 3339 "
                           "times carry their own offset)")
    seen = {}
    for ours, rule in m.rules.items():
        for theirs in rule.sources:
            if theirs in seen and seen[theirs] != ours and not rule.by_kind:
                raise MappingError(path, "columns." + ours, "file column %r is already %s"
                                   % (theirs, seen[theirs]))
            seen.setdefault(theirs, ours)
    for theirs, ours in data.get("kinds", {}).items():
        if ours not in KINDS + ("other",):
            raise MappingError(path, "kinds." + theirs, "expected one of %s or other (a line "
                               "that is not a payment: counted, not settled), got %r"
                               % ("|".join(KINDS), ours))
        m.kinds[theirs.strip()] = ours if ours != "other" else "other:" + theirs.strip()
    missing = [c for c in REQUIRED_COLUMNS if c not in m.rules
               and not (c == "settled_at" and m.settled_at is not None)]
    if missing:
        raise MappingError(path, "columns", "no rule for required column(s) %s"
                           % ", ".join(missing))
    _check_fixed(m, path)
    return m


def _check_fixed(m, path):
    """A fixed value is checked once here, with the row rules, not once per row."""
    from daozhang.settlement_files.rows import check_fixed_values
    check_fixed_values(m, path)


def load_mapping(path):
    """Read and validate a mapping TOML file."""
    data = read_toml(path)
    return mapping_from_dict(data, str(path))


__all__ = ["COLUMNS", "KINDS", "MONEY", "REQUIRED_COLUMNS", "Mapping", "MappingError",
           "load_mapping", "mapping_from_dict"]
