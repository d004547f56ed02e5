"""The contracted fee of a transaction (docs/SPEC.md §7.3).

    fee = min(round_half_up(amount * bp / 10000), cap) + d0_surcharge (if D0)

Integer arithmetic only: money is in minor units (fen), rates in basis
points (55 bp = 0.55 %).  Portable (CPython and MicroPython).

`fees` is the profile's fee table as daozhang/profile.py returns it:
    {"tolerance": 1, "d0_surcharge": 200,
     "card_types": {"debit": {"bp": 55, "cap": 2000}, "credit": {"bp": 60, "cap": None}}}
A card type missing from "card_types" falls back to a "default" entry when
the profile has one; otherwise the contracted fee is unknown (None) and the
over_fee check is skipped for that transaction (reported, not guessed).
"""

from daozhang.agent.core.errors import LocalError


def rate_fee(amount, bp):
    """amount * bp / 10000, rounded half up (exact for non-negative ints)."""
    if not isinstance(amount, int) or not isinstance(bp, int) or amount < 0 or bp < 0:
        raise LocalError("rate_fee expects non-negative ints, got amount=%r bp=%r" % (amount, bp))
    return (amount * bp + 5000) // 10000


def card_rate(fees, card_type):
    """The {"bp", "cap"} entry for a card type, or None when the contract has none."""
    table = fees.get("card_types", {})
    entry = table.get(card_type)
    if entry is None:
        entry = table.get("default")
    return entry


def contracted_fee(amount, card_type, fees, settled_d0):
    """The fee the merchant agreed to pay on a sale of `amount` minor units.

    settled_d0: True when the sale settled (or is expected to settle) D0,
    which is the only case where the D0 surcharge is owed.  Returns None
    when the contract has no rate for this card type.
    """
    entry = card_rate(fees, card_type)
    if entry is None:
        return None
    fee = rate_fee(amount, entry["bp"])
    cap = entry.get("cap")
    if cap is not None and fee > cap:
        fee = cap
    if settled_d0:
        fee += fees.get("d0_surcharge", 0)
    return fee
