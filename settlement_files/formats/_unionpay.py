"""What UnionPay's fixed-width files share (ZM and ACOM): GBK fields counted
in bytes with one separator byte after each, no header, MMDDhhmmss Beijing
times whose year and settlement date come from the file name."""


def record_bytes(fields):
    """The record length: the widths plus one separator between fields."""
    return sum(w for _, w in fields) + len(fields) - 1


def fixed_tables(fields, name_pattern):
    """The [file] and [times] tables of a UnionPay fixed-width layout."""
    return {
        "file": {"type": "fixed", "encoding": "gbk", "separator": 1,
                 "widths": [w for _, w in fields], "names": [n for n, _ in fields],
                 "settled_at": "file_date", "name_date": name_pattern.pattern},
        "times": {"format": "%m%d%H%M%S", "timezone": "Asia/Shanghai", "year": "file_date"},
    }
