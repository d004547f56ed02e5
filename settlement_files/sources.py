"""A settlement file's bytes -> records (line number, list of cell texts),
streamed: nothing holds the whole file (issue 12: a 200 MB file in bounded
memory).  One opener per container and per table type:

    open_binary(path)      unwraps gzip and zip (the member holding the data)
    csv_cells(...)         CSV in any encoding (csv module; BOM dropped)
    xlsx_cells / xls_cells spreadsheets through openpyxl / xlrd (libraries,
                           not hand-written parsers); values as text
    fixed_cells(...)       fixed-width records counted in BYTES of the
                           encoding (fixed_width.py), one slice decoded at a time

Every failure becomes SettlementFileError naming the file and where.
"""

import codecs
import csv
import datetime
import gzip
import io
import zipfile

from daozhang.settlement_files.errors import SettlementFileError
from daozhang.settlement_files.fixed_width import split_record

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SKIP_MEMBER = ("汇总", "ZME")          # Alipay's summary, UnionPay's error file


def _member_name(info):
    """A zip member's name; GBK names (no UTF-8 flag) decoded as GBK."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _zip_member(archive, name):
    files = [i for i in archive.infolist() if not i.is_dir()]
    if not files:
        raise SettlementFileError("%s: the zip file is empty" % name)
    data = [i for i in files if not any(s in _member_name(i) for s in _SKIP_MEMBER)] or files
    return data[0], _member_name(data[0])


def is_xlsx(head, f):
    """A zip holding [Content_Types].xml is an OOXML workbook, not a wrapper."""
    if head[:4] != ZIP_MAGIC:
        return False
    try:
        with zipfile.ZipFile(f) as z:
            return "[Content_Types].xml" in z.namelist()
    except zipfile.BadZipFile:
        return False
    finally:
        f.seek(0)


def open_binary(path, name):
    """(binary file object, name of what is inside, first bytes) with gzip and
    zip wrappers removed (one level each)."""
    try:
        f = path if hasattr(path, "read") else open(path, "rb")
    except OSError as exc:
        raise SettlementFileError("cannot read settlement file %s: %s"
                                  % (name, exc.strerror or exc)) from None
    inner = name
    try:
        head = f.read(8)
        f.seek(0)
        if head[:2] == GZIP_MAGIC:
            f = gzip.GzipFile(fileobj=f)
            inner = name[:-3] if name.endswith(".gz") else name
            head = f.read(8)
            f.seek(0)
        if head[:4] == ZIP_MAGIC and not is_xlsx(head, f):
            archive = zipfile.ZipFile(f)
            info, inner = _zip_member(archive, name)
            f = archive.open(info)
            head = f.read(8)
            f.close()
            f = archive.open(info)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise SettlementFileError("%s: a damaged gzip or zip wrapper: %s" % (name, exc)) from None
    return f, inner, head


def csv_cells(f, encoding, delimiter, name):
    """Yield (line, cells) of a CSV byte stream."""
    declared = encoding
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    text = io.TextIOWrapper(f, encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, exc
            line = reader.line_num + 1
            continue
        except UnicodeDecodeError:
            raise SettlementFileError("%s: not %s near line %d (set encoding in a mapping, "
                                      "e.g. gb18030)" % (name, declared, line)) from None
        yield line, cells
        line = reader.line_num + 1


def cell_text(value):
    """A spreadsheet value as the text a CSV export would show."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def xlsx_cells(f, sheet, name):
    import openpyxl
    try:
        book = openpyxl.load_workbook(f, read_only=True, data_only=True)
    except Exception as exc:    # openpyxl raises many types for a bad workbook
        raise SettlementFileError("%s: not a readable .xlsx workbook: %s" % (name, exc)) from None
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
    except KeyError:
        raise SettlementFileError("%s: no sheet %r (it has %s)"
                                  % (name, sheet, ", ".join(book.sheetnames))) from None
    rows = ws.iter_rows(values_only=True)
    i = 0
    while True:
        try:
            values = next(rows)
        except StopIteration:
            break
        except Exception as exc:    # damaged sheet XML inside a readable zip
            raise SettlementFileError("%s: .xlsx sheet unreadable after row %d: %s"
                                      % (name, i, exc)) from None
        i += 1
        yield i, [cell_text(v) for v in values]
    book.close()


def xls_cells(f, sheet, name):
    import xlrd
    try:
        book = xlrd.open_workbook(file_contents=f.read(), on_demand=True)
        ws = book.sheet_by_name(sheet) if sheet else book.sheet_by_index(0)
    except Exception as exc:        # xlrd raises many types for a damaged BIFF file
        raise SettlementFileError("%s: not a readable .xls workbook: %s" % (name, exc)) from None
    for r in range(ws.nrows):
        cells = []
        for c in ws.row(r):
            if c.ctype == xlrd.XL_CELL_DATE:
                cells.append(cell_text(xlrd.xldate_as_datetime(c.value, book.datemode)))
            else:
                cells.append(cell_text(c.value))
        yield r + 1, cells


def fixed_cells(f, mapping, name):
    """Yield (line, cells) of byte-counted fixed-width records."""
    for i, record in enumerate(f, 1):
        record = record.rstrip(b"\r\n")
        if not record.strip():
            continue
        try:
            cells = split_record(record, mapping.widths, mapping.separator, mapping.encoding)
        except ValueError as exc:
            yield i, exc
            continue
        yield i, cells
