"""Byte sizes on the command line: 64MiB, 512KiB, 1048576."""

import click

_UNITS = {"": 1, "B": 1, "K": 1024, "KIB": 1024, "KB": 1000, "M": 1 << 20, "MIB": 1 << 20,
          "MB": 1000 ** 2, "G": 1 << 30, "GIB": 1 << 30, "GB": 1000 ** 3}


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = value.strip().upper()
        digits = text.rstrip("KMGIB")
        unit = text[len(digits):]
        if not digits.isdigit() or unit not in _UNITS:
            self.fail("%r is not a size such as 64MiB, 512KiB or 1048576" % value, param, ctx)
        return int(digits) * _UNITS[unit]
