"""Settlement files as acquirers really send them (docs/SPEC.md §7.9).

One reader package for `daozhang backend settle` and `daozhang reconcile`:

    stream = open_settlement(path, fmt="auto", map_path=None, settled_at=None)
    stream.chosen                   # ("wechatpay", "the header starts 交易时间,公众账号ID")
    for row in stream.rows(): ...   # streamed; settlement_checks' row dicts
    stream.info.as_dict()           # bad rows, repeats, card numbers masked

Built-in formats (formats/), the map language (mapping.py, columns.py), the
sources (CSV, .xlsx, .xls, fixed-width bytes; gzip and zip), one card-number
rule (card_mask.py) applied to every cell, and the bank-statement check
(bank.py).
"""

import copy
import io
from datetime import datetime, timedelta

from daozhang.settlement_files.columns import COLUMNS, KINDS, REQUIRED_COLUMNS
from daozhang.settlement_files.detect import detect_format
from daozhang.settlement_files.errors import MappingError, RowProblem, SettlementFileError
from daozhang.settlement_files.formats import BY_NAME
from daozhang.settlement_files.mapping import Mapping, load_mapping, mapping_from_dict
from daozhang.settlement_files.reader import SettlementFile, SettlementStream, read_settlement_file
from daozhang.settlement_files.rows import FileContext
from daozhang.settlement_files.values import EPOCH

FORMATS = ("auto",) + tuple(BY_NAME) + ("csv",)


def builtin_mapping(fmt):
    """The Mapping of a built-in format name ("csv": the documented layout)."""
    if fmt == "csv":
        return Mapping.default()
    return mapping_from_dict(BY_NAME[fmt].LAYOUT, "<format %s>" % fmt, fmt)


def file_context(mapping, name, settled_at=None):
    """The file's date (from its name) and the settlement time rows lack."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    found = mapping.name_date.search(base)
    file_date = None
    if found:
        groups = found.groupdict()
        year = int(groups["yyyy"]) if groups.get("yyyy") else 2000 + int(groups["yy"])
        file_date = (year, int(groups["mm"]), int(groups["dd"]))
        try:
            datetime(*file_date)
        except ValueError:
            file_date = None
    if settled_at is None and mapping.settled_at == "file_date" and file_date is not None:
        midnight = datetime(*file_date, tzinfo=mapping.tz or _shanghai())
        settled_at = (midnight - EPOCH) // timedelta(milliseconds=1)
    elif settled_at is None and isinstance(mapping.settled_at, int):
        settled_at = mapping.settled_at
    return FileContext(file_date, settled_at)


def _shanghai():
    import zoneinfo
    return zoneinfo.ZoneInfo("Asia/Shanghai")


def open_settlement(path, fmt="auto", map_path=None, settled_at=None, name=None):
    """A SettlementStream over `path` (a file name, or bytes for tests).
    `fmt` is a FORMATS name; `map_path` a map file (wins over fmt);
    `settled_at` (Unix ms) for files whose rows carry no settlement time."""
    name = name or (str(path) if not isinstance(path, (bytes, bytearray)) else "<bytes>")
    if map_path is not None:
        mapping, chosen = load_mapping(map_path), ("map", "--map %s" % map_path)
    else:
        if fmt == "auto":
            chosen = detect_format(_source(path), name)
        else:
            if fmt not in FORMATS:
                raise MappingError("--format", fmt, "expected one of %s" % "|".join(FORMATS))
            chosen = (fmt, "--format %s" % fmt)
        mapping = builtin_mapping(chosen[0])
    stream = SettlementStream(_source(path), mapping, name, chosen[0],
                              file_context(mapping, name, settled_at))
    stream.chosen = chosen
    stream.info.reason = chosen[1]
    return stream


def _source(path):
    return io.BytesIO(bytes(path)) if isinstance(path, (bytes, bytearray)) else path


def parse_settlement_text(text, mapping=None, name="<text>"):
    """Decoded text in a CSV layout -> SettlementFile (tests, the fuzz target)."""
    mapping = copy.copy(mapping or Mapping.default())
    mapping.encoding = "utf-8"
    return read_settlement_file(io.BytesIO(text.encode("utf-8", "surrogatepass")), mapping, name)


def decode_settlement_bytes(data, mapping=None, name="<bytes>"):
    """Raw bytes in a mapping's layout and encoding -> SettlementFile."""
    return read_settlement_file(io.BytesIO(bytes(data)), mapping, name)


__all__ = ["COLUMNS", "FORMATS", "KINDS", "REQUIRED_COLUMNS", "Mapping", "MappingError",
           "RowProblem", "SettlementFile", "SettlementFileError", "SettlementStream",
           "builtin_mapping", "decode_settlement_bytes", "file_context", "load_mapping",
           "mapping_from_dict", "open_settlement", "parse_settlement_text",
           "read_settlement_file"]
