"""`--format auto`: recognise a settlement file by its name and first bytes.

Each built-in format's `sniff` gives a reason or None; the first that
recognises the file wins, and the caller prints which one and why.  The
project's own CSV is recognised by its header (acquirer_ref).  A file that
none recognises is refused with the list of formats, never guessed.
"""

from daozhang.settlement_files.errors import SettlementFileError
from daozhang.settlement_files.formats import MODULES
from daozhang.settlement_files import sources

SNIFF_BYTES = 4096


def detect_format(path, name):
    """(format name, reason); raises SettlementFileError."""
    f, inner, head = sources.open_binary(path, name)
    with f:
        head = f.read(SNIFF_BYTES)
    base = inner.replace("\\", "/").rsplit("/", 1)[-1]
    if head[:8] == sources.XLS_MAGIC or sources.ZIP_MAGIC == head[:4]:
        raise SettlementFileError("%s: a spreadsheet (.xls/.xlsx): give its layout with --map "
                                  "(README: writing a map)" % name)
    for module in MODULES:
        reason = module.sniff(base, head)
        if reason:
            return module.NAME, reason
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    if b"acquirer_ref" in first:
        return "csv", "a header with acquirer_ref (the documented layout)"
    if b"," in first and not any(b < 9 for b in first):
        # Text with commas: read as the documented layout, whose header error
        # then names the missing columns and the columns the file has.
        return "csv", "no other format recognised; comma-separated text"
    raise SettlementFileError(
        "%s: not a format daozhang recognises (unionpay-zm, unionpay-acom, wechatpay, alipay, "
        "stripe, adyen, csv): give --format, or --map for an acquirer's own layout" % name)
