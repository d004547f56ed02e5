"""The acquirer's settlement file (CSV) -> settlement rows for the checks.

docs/SPEC.md §7.9.  A bad row is reported with its line
number and reason and left out; the good rows still count.  The reader
raises only `SettlementFileError` (the file as a whole is unusable) and,
for a mapping, `MappingError`.  `parse_settlement_text` is sans-IO (the
fuzz target); `read_settlement_file` adds the file and its encoding.

Each row is the dict agent/core/settlement_checks.py takes (7.4): our
columns with ints and Unix-millisecond times parsed, empty fields as None,
plus `line`.  The reconcile tool and `daozhang backend settle` share it.
"""

import csv
import io
import re
from datetime import datetime, timedelta, timezone

from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.errors import RemoteError, ValidationError
from daozhang.host_tools.settlement_map import COLUMNS, KINDS, REQUIRED_COLUMNS, Mapping

MAX_DIGITS = 15                 # |money| < 10**15 minor units
MAX_TEXT = 64                   # identifiers: acquirer_ref, terminal_id, rrn, auth_code
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DIGITS = re.compile(r"[0-9]+\Z")
_TRIM = " \t"


class SettlementFileError(RemoteError):
    """The settlement file cannot be read at all (exit code 2): unreadable,
    wrong encoding, no header or a required column missing."""


class RowProblem(Exception):
    """Internal: why one field of one row is bad (becomes a bad-row reason)."""

    def __init__(self, column, message):
        super().__init__("%s: %s" % (column, message))
        self.column = column


class SettlementFile:
    """What a settlement file held: good rows, bad rows, repeated rows."""

    def __init__(self, name, columns):
        self.name = name
        self.columns = columns          # the header as read (trimmed)
        self.rows = []                  # row dicts, file order
        self.bad_rows = []              # {"line": n, "reason": text}
        self.repeated = 0               # exact repeats of an earlier row, dropped

    def as_dict(self):
        return {"path": self.name, "rows": len(self.rows), "bad_rows": list(self.bad_rows),
                "repeated": self.repeated}


def _shown(value):
    """At most 40 characters of an outside value for a message."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def mask_card(text):
    """Keep only the first 6 and last 4 positions in clear (SPEC 7.x.1)."""
    kept = "".join("*" if c in "*Xx" else c for c in text if c not in " -")
    if len(kept) >= 13:
        return kept[:6] + "*" * (len(kept) - 10) + kept[-4:]
    if len(kept) > 4:
        return "*" * (len(kept) - 4) + kept[-4:]
    return kept


def _identifier(column, raw, limit=MAX_TEXT):
    if len(raw) > limit:
        raise RowProblem(column, "expected at most %d characters, got %d" % (limit, len(raw)))
    for ch in raw:
        if ord(ch) < 32 or ord(ch) == 127:
            raise RowProblem(column, "control character %r in %s" % (ch, _shown(raw)))
    return raw


def _fixed_digits(column, raw, count):
    if len(raw) != count or not _DIGITS.match(raw):
        raise RowProblem(column, "expected exactly %d digits, got %s" % (count, _shown(raw)))
    return raw


def parse_money(column, raw, scale):
    """Signed minor units from '-1250' (scale 0) or '-12.50' (scale 2)."""
    sign = 1
    body = raw
    if body[:1] == "-":
        sign, body = -1, body[1:]
    whole, dot, frac = body.partition(".")
    if not _DIGITS.match(whole) or (dot and not _DIGITS.match(frac)):
        want = "an integer in minor units" if scale == 0 else \
            "a decimal with up to %d fraction digits" % scale
        raise RowProblem(column, "expected %s, got %s" % (want, _shown(raw)))
    if len(frac) > scale:
        if scale == 0:
            raise RowProblem(column, "expected an integer in minor units, got %s (a decimal: "
                             "declare [amounts] scale in a mapping)" % _shown(raw))
        raise RowProblem(column, "%d fraction digits, the mapping's scale is %d: %s"
                         % (len(frac), scale, _shown(raw)))
    if len(whole) > MAX_DIGITS:
        raise RowProblem(column, "more than %d digits: %s" % (MAX_DIGITS, _shown(raw)))
    value = int(whole + frac + "0" * (scale - len(frac)))
    if value >= 10 ** MAX_DIGITS:
        raise RowProblem(column, "more than %d digits in minor units: %s" % (MAX_DIGITS,
                                                                           _shown(raw)))
    return sign * value


def parse_time(column, raw, mapping):
    """Unix milliseconds from RFC 3339 text, or from the mapping's format."""
    if mapping.time_format is None:
        try:
            return parse_rfc3339_ms(raw, column)
        except ValidationError:
            raise RowProblem(column, "expected RFC 3339 time with offset such as "
                             "2027-01-04T10:00:00+08:00, got %s" % _shown(raw)) from None
    try:
        when = datetime.strptime(raw, mapping.time_format)
    except ValueError:
        raise RowProblem(column, "expected a time as %r, got %s"
                         % (mapping.time_format, _shown(raw))) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=mapping.tz)   # fold=0: the rule of SPEC 7.2
    return (when - _EPOCH) // timedelta(milliseconds=1)


def parse_field(column, raw, mapping):
    """One non-empty trimmed field -> its value; raises RowProblem."""
    if column in ("amount", "fee", "settled_amount"):
        return parse_money(column, raw, mapping.scale)
    if column in ("txn_time", "settled_at"):
        return parse_time(column, raw, mapping)
    if column == "merchant_id":
        return _fixed_digits(column, raw, 15)
    if column in ("mcc", "region"):
        return _fixed_digits(column, raw, 4)
    if column == "kind":
        kind = mapping.kinds.get(raw, raw)
        if kind not in KINDS:
            raise RowProblem(column, "expected one of %s%s, got %s" % (
                "|".join(KINDS), " or a [kinds] entry" if mapping.kinds else "", _shown(raw)))
        return kind
    if column == "card":
        # Never echo a card field: it might hold a full card number.
        if len(raw) > 40:
            raise RowProblem(column, "expected a masked card of at most 40 characters, "
                             "got %d" % len(raw))
        return mask_card(raw)
    return _identifier(column, raw)


def _locate(header, mapping, name):
    """our column -> index in the header (or None, absent)."""
    index = {}
    for i, text in enumerate(header):
        index.setdefault(text, []).append(i)
    where = {}
    for ours in COLUMNS:
        theirs = mapping.header[ours]
        found = index.get(theirs, [])
        if len(found) > 1:
            raise SettlementFileError("%s: column %r appears %d times in the header (line %d)"
                                      % (name, theirs, len(found), mapping.skip_lines + 1))
        where[ours] = found[0] if found else None
    missing = [mapping.header[c] for c in REQUIRED_COLUMNS
               if where[c] is None and c not in mapping.fixed]
    if missing:
        raise SettlementFileError(
            "%s: header (line %d) lacks required column(s) %s; it has %s (with %s; "
            "use --map for another layout)" % (name, mapping.skip_lines + 1, ", ".join(missing),
                                               ", ".join(repr(h) for h in header[:20]) or "nothing",
                                               mapping.describe()))
    return where


def parse_settlement_text(text, mapping=None, name="<text>"):
    """Decoded file text -> SettlementFile.  Raises SettlementFileError only."""
    mapping = mapping or Mapping.default()
    if text[:1] == "\ufeff":
        text = text[1:]
    stream = io.StringIO(text, newline="")
    for _ in range(mapping.skip_lines):
        stream.readline()
    reader = csv.reader(stream, delimiter=mapping.delimiter, quotechar='"', doublequote=True,
                        strict=True)
    header = None
    while header is None:
        try:
            record = next(reader)
        except StopIteration:
            raise SettlementFileError("%s: no header line (expected the columns %s)"
                                      % (name, ", ".join(mapping.header[c] for c in COLUMNS))
                                      ) from None
        except csv.Error as exc:
            raise SettlementFileError("%s: header (line %d) is not CSV: %s"
                                      % (name, mapping.skip_lines + reader.line_num, exc)) from None
        if any(f.strip(_TRIM) for f in record):
            header = [f.strip(_TRIM) for f in record]
    where = _locate(header, mapping, name)
    result = SettlementFile(name, header)
    seen = {}                               # acquirer_ref -> (line, values)
    while True:
        line = mapping.skip_lines + reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.bad_rows.append({"line": line, "reason": "not CSV: %s" % exc})
            continue
        if not any(f.strip(_TRIM) for f in record):
            continue
        try:
            row = _row(record, header, where, mapping)
        except RowProblem as exc:
            result.bad_rows.append({"line": line, "reason": str(exc)})
            continue
        values = tuple(row[c] for c in COLUMNS)
        earlier = seen.get(row["acquirer_ref"])
        if earlier is not None:
            if earlier[1] == values:
                result.repeated += 1
            else:
                result.bad_rows.append({"line": line, "reason": "acquirer_ref: %s repeats line "
                                        "%d with different content" % (
                                            _shown(row["acquirer_ref"]), earlier[0])})
            continue
        seen[row["acquirer_ref"]] = (line, values)
        row["line"] = line
        result.rows.append(row)
    return result


def _row(record, header, where, mapping):
    extra = [f for f in record[len(header):] if f.strip(_TRIM)]
    if extra:
        raise RowProblem("(row)", "%d fields, the header has %d (a stray delimiter?)"
                         % (len(record), len(header)))
    row = {}
    for ours in COLUMNS:
        i = where[ours]
        if i is None:
            raw = mapping.fixed.get(ours, "")
        else:
            raw = record[i].strip(_TRIM) if i < len(record) else ""
        if raw == "":
            if ours in REQUIRED_COLUMNS:
                raise RowProblem(ours, "missing (required)")
            row[ours] = None
        else:
            row[ours] = parse_field(ours, raw, mapping)
    return row


def decode_settlement_bytes(data, mapping=None, name="<bytes>"):
    """Raw file bytes -> SettlementFile, decoding with the mapping's encoding."""
    mapping = mapping or Mapping.default()
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise SettlementFileError("%s: not %s at byte offset %d (set [csv] encoding in a "
                                  "mapping, e.g. gb18030)" % (name, mapping.encoding, exc.start)
                                  ) from None
    return parse_settlement_text(text, mapping, name)


def read_settlement_file(path, mapping=None):
    """Read a settlement file from disk; raises SettlementFileError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SettlementFileError("cannot read settlement file %s: %s"
                                  % (path, exc.strerror or exc)) from None
    return decode_settlement_bytes(data, mapping, str(path))
