"""Command-line values that get written somewhere (a journal's superblock,
a certificate's CN, the backend's device table) pass the card-data rule
first (agent/core/card_data.py, SPEC 4.4): a card number typed or pasted
into the wrong argument is refused, never stored, never echoed."""

import click

from daozhang.agent.core import card_data


def refuse_card_data(ctx, param, value):
    """click callback: the value unchanged, or a usage error (exit 2)."""
    values = value if isinstance(value, (list, tuple)) else (value,)
    for one in values:
        if isinstance(one, str) and card_data.card_data_code(one, identifier=True) is not None:
            name = param.opts[0] if param.opts else param.name
            raise click.BadParameter("holds card data (a card number, track data or a CVV); "
                                     "it would be written to disk, so it is refused",
                                     ctx=ctx, param_hint=name)
    return value
