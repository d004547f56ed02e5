"""The options `backend settle` and `reconcile` share for reading an
acquirer's file (--format, --map, --settled-at) and a bank statement
(--bank, --bank-map), and the one line that says which format was chosen."""

import click

from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.errors import ValidationError

FORMAT_NAMES = ("auto", "unionpay-zm", "unionpay-acom", "wechatpay", "alipay", "stripe", "adyen",
                "csv")


def _time(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_rfc3339_ms(value, param.opts[0])
    except ValidationError:
        raise click.BadParameter("expected RFC 3339 with an offset, such as "
                                 "2027-01-08T00:00:00+08:00, got %r" % value) from None


def settlement_options(command):
    """Decorate a click command with the shared reading options."""
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default="auto",
                     show_default=True, help="The settlement file's format; auto recognises "
                     "each by its name and first bytes and says which it chose."),
        click.option("--map", "map_path", type=click.Path(exists=True, dir_okay=False),
                     help="A map file (TOML) for an acquirer's own layout (CSV, .xlsx, .xls, "
                     "fixed-width); wins over --format."),
        click.option("--settled-at", "settled_at", callback=_time, metavar="TIME",
                     help="Settlement time for rows that carry none, when the file name has "
                     "no date (RFC 3339)."),
        click.option("--bank", "bank_path", type=click.Path(exists=True, dir_okay=False),
                     help="A bank statement export: check each day's payout reached the "
                     "account (deposit_missing, deposit_short)."),
        click.option("--bank-map", "bank_map_path", type=click.Path(exists=True, dir_okay=False),
                     help="The bank statement's map file (TOML); required with --bank."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_input(path, fmt, map_path, settled_at, quiet=False):
    """A SettlementStream; tells on stderr which format was chosen and why."""
    from daozhang.settlement_files import open_settlement
    stream = open_settlement(path, fmt, map_path, settled_at)
    if not quiet:
        click.echo("%s: read as %s (%s)" % (path, stream.chosen[0], stream.chosen[1]), err=True)
    return stream


def bank_statement(bank_path, bank_map_path):
    """The bank statement's credits, or None without --bank."""
    if bank_path is None:
        return None
    if bank_map_path is None:
        raise click.UsageError("--bank needs --bank-map (the statement's layout: README, "
                               "the bank-statement check)")
    from daozhang.settlement_files.bank import read_bank_statement
    return read_bank_statement(bank_path, bank_map_path)
