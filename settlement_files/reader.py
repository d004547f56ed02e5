"""Read a settlement file under a mapping, streamed: records -> rows.

docs/SPEC.md §7.9.  `SettlementStream.rows()` yields good rows one at a time
(a 200 MB file never sits in memory); bad rows are collected with their line
and reason and the other rows still count; exact repeats are counted and
dropped; the same acquirer_ref with other content is a bad row, except a
refund reusing its payment's id (WeChat, Alipay), which is kept under
"<id>/refund".  `read_settlement_file` is the list form for small files.
"""

from daozhang.settlement_files.card_mask import mask_cell
from daozhang.settlement_files.columns import COLUMNS, REQUIRED_COLUMNS
from daozhang.settlement_files.errors import RowProblem, SettlementFileError
from daozhang.settlement_files.mapping import Mapping
from daozhang.settlement_files.rows import (
    FileContext, OtherLine, card_columns, plan_for, row_from_record)
from daozhang.settlement_files import sources
from daozhang.settlement_files.seen import Seen64, digest64

HEADER_SEARCH = 50          # rows scanned for the header (title rows above it)
MAX_LISTED = 1000           # bad rows and card findings kept in full; the rest counted


class SettlementFile:
    """What a settlement file held: good rows, bad rows, repeats, findings."""

    def __init__(self, name, columns=(), fmt=None):
        self.name = name
        self.format = fmt
        self.reason = None              # why this format (--format auto says)
        self.columns = list(columns)    # the header as read (trimmed)
        self.rows = []                  # row dicts, file order (list form only)
        self.row_count = 0
        self.bad_rows = []              # {"line": n, "reason": text}
        self.bad_count = 0
        self.repeated = 0               # exact repeats of an earlier row, dropped
        self.skipped = 0                # banner, title, 合计 and summary lines
        self.card_findings = []         # {"line": n, "columns": [...]}: a card number masked
        self.card_count = 0
        self.other_lines = {}           # label -> count: fee, payout lines (not payments)

    def as_dict(self):
        return {"path": self.name, "format": self.format, "format_reason": self.reason,
                "rows": len(self.rows) or self.row_count, "bad_rows": list(self.bad_rows),
                "bad_count": self.bad_count, "repeated": self.repeated, "skipped": self.skipped,
                "card_masked": self.card_count, "card_findings": list(self.card_findings),
                "other_lines": dict(self.other_lines)}

    def bad(self, line, reason):
        self.bad_count += 1
        if len(self.bad_rows) < MAX_LISTED:
            # A reason quotes cells; as free text it is scanned again.
            self.bad_rows.append({"line": line, "reason": mask_cell(reason)[0]})


def _starts(cells, prefixes, strip):
    first = next((c.strip(strip) for c in cells if c and c.strip(strip)), "")
    return any(first.startswith(p) for p in prefixes)


def _header_groups(mapping):
    """For each required column, the file columns of which one must be present."""
    groups = []
    for ours in REQUIRED_COLUMNS:
        rule = mapping.rules.get(ours)
        if rule is None or rule.fixed is not None or rule.value is not None or (
                ours == "settled_at" and mapping.settled_at is not None):
            continue
        names = [n for n in rule.file_columns() if n not in rule.by_kind.values()]
        if names:
            groups.append((ours, names))
    return groups


class SettlementStream:
    """One pass over one file.  Iterate `rows()`; then `info` holds the
    bad rows, repeats and card findings of that pass."""

    def __init__(self, path, mapping=None, name=None, fmt=None, context=None):
        self.path = path
        self.mapping = mapping or Mapping.default()
        self.name = name or str(path)
        self.info = SettlementFile(self.name, fmt=fmt or self.mapping.name or "csv")
        self.context = context or FileContext()
        self._refs = Seen64()           # acquirer_refs kept so far (16 bytes each)

    # -- records -------------------------------------------------------------

    def _cells(self, f):
        m = self.mapping
        if m.file_type == "csv":
            return sources.csv_cells(f, m.encoding, m.delimiter, self.name)
        if m.file_type == "xlsx":
            return sources.xlsx_cells(f, m.sheet, self.name)
        if m.file_type == "xls":
            return sources.xls_cells(f, m.sheet, self.name)
        return sources.fixed_cells(f, m, self.name)

    def _header(self, cells_iter):
        m = self.mapping
        groups = _header_groups(m)
        first = None
        for line, cells in cells_iter:
            if line <= m.skip_lines or isinstance(cells, Exception):
                if isinstance(cells, Exception) and line > m.skip_lines:
                    raise SettlementFileError("%s: header (line %d) is not CSV: %s"
                                              % (self.name, line, cells))
                continue
            header = [mask_cell(c.strip(m.strip))[0] for c in cells]
            if not any(header) or _starts(header, m.skip_rows, m.strip):
                self.info.skipped += 1 if any(header) else 0
                continue
            first = first or (line, header)
            present = set(header)
            if all(any(n in present for n in names) for _, names in groups):
                return line, header
            if line - first[0] >= HEADER_SEARCH:
                break
            self.info.skipped += 1
        if first is None:
            raise SettlementFileError("%s: no header line (expected the columns %s)" % (
                self.name, ", ".join(n[0] for _, n in groups)))
        line, header = first
        missing = [names[0] for _, names in groups if not any(n in header for n in names)]
        raise SettlementFileError(
            "%s: header (line %d) lacks required column(s) %s; it has %s (with %s; use --format "
            "or --map for another layout)" % (self.name, line, ", ".join(missing),
                                              ", ".join(repr(h) for h in header[:20]) or "nothing",
                                              m.describe()))

    def _index(self, header, line):
        used = set()
        for rule in self.mapping.rules.values():
            used.update(rule.file_columns())
        where = {}
        for i, text in enumerate(header):
            if text in where and text in used:
                raise SettlementFileError("%s: column %r appears %d times in the header (line %d)"
                                          % (self.name, text, header.count(text), line))
            where.setdefault(text, i)
        return where

    def records(self):
        """Yield (line, {file column: cell}) or (line, Exception)."""
        m = self.mapping
        f, inner, _ = sources.open_binary(self.path, self.name)
        with f:
            cells_iter = self._cells(f)
            if m.file_type == "fixed":
                names, width = m.names, len(m.names)
            else:
                line, header = self._header(cells_iter)
                self.info.columns = header
                where = self._index(header, line)
                width = len(header)
            for line, cells in cells_iter:
                if isinstance(cells, Exception):
                    yield line, cells
                    continue
                if not any(c.strip(m.strip) for c in cells):
                    continue
                if m.end_at and _starts(cells, m.end_at, m.strip):
                    self.info.skipped += 1
                    return
                if m.skip_rows and _starts(cells, m.skip_rows, m.strip):
                    self.info.skipped += 1
                    continue
                if m.file_type == "fixed":
                    yield line, dict(zip(names, cells))
                    continue
                if m.file_type == "csv" and any(c.strip(m.strip) for c in cells[width:]):
                    yield line, RowProblem("(row)", "%d fields, the header has %d (a stray "
                                           "delimiter?)" % (len(cells), width))
                    continue
                yield line, dict((h, cells[i]) for h, i in where.items() if i < len(cells))

    # -- rows ----------------------------------------------------------------

    def rows(self):
        """Yield each good row (with `line`), in file order."""
        cards = card_columns(self.mapping)
        plan = None
        for line, record in self.records():
            if plan is None:
                plan = plan_for(self.mapping, set(self.info.columns) if self.info.columns
                                else None)
            if isinstance(record, Exception):
                reason = str(record) if isinstance(record, RowProblem) else "not CSV: %s" % record
                self.info.bad(line, reason)
                continue
            try:
                row, found = row_from_record(record, self.mapping, self.context, cards, plan)
            except RowProblem as exc:
                self.info.bad(line, str(exc))
                continue
            except OtherLine as other:
                self.info.other_lines[other.label] = self.info.other_lines.get(other.label, 0) + 1
                continue
            if found:
                self.info.card_count += 1
                if len(self.info.card_findings) < MAX_LISTED:
                    self.info.card_findings.append({"line": line, "columns": found})
            if not self._identity(row, line):
                continue
            row["line"] = line
            self.info.row_count += 1
            yield row

    def _identity(self, row, line):
        """True for a row to keep: drops exact repeats, refuses a reused id,
        keeps a refund that reuses its payment's id under "<id>/refund"."""
        ref = row["acquirer_ref"]
        if row.get("kind") == "refund" and digest64(ref) in self._refs:
            ref = row["acquirer_ref"] = (ref + "/refund")[-64:]
        # One entry per kept row: its ref -> (line << 32 | 32 bits of the whole
        # row), so a repeat is told exact or different and names its line.
        whole = digest64(tuple(row[c] for c in COLUMNS)) & 0xFFFFFFFF
        earlier = self._refs.add(digest64(ref), (min(line, 0xFFFFFFFF) << 32) | whole)
        if earlier is None:
            return True
        if earlier & 0xFFFFFFFF == whole:
            self.info.repeated += 1
        else:
            self.info.bad(line, "acquirer_ref: %r repeats line %d with different content"
                          % (ref[:40], earlier >> 32))
        return False


def read_settlement_file(path, mapping=None, name=None, fmt=None, context=None):
    """The whole file as a SettlementFile with `rows` (small files, tests)."""
    stream = SettlementStream(path, mapping, name, fmt, context)
    stream.info.rows = list(stream.rows())
    return stream.info
