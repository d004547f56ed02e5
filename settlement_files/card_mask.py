"""The one place settlement input is cleaned of card numbers (PCI DSS 3.4).

`mask_cell(text, identifier=False) -> (masked, found)`: every card number
inside `text` is cut to its first 6 and last 4 digits; `found` says whether
one was there, so the reader records a `card_masked` finding.  Applied to
every cell a map reads, so a full card number in rrn, auth_code,
acquirer_ref or a note never reaches the backend's database, a signed ack,
the terminal or a report.

The rule is the project's one card-data rule (agent/core/card_data.py,
SPEC 4.4): a 13-19-digit window with an ISO/IEC 7812 scheme prefix and a
valid Luhn check, ASCII or full-width digits, any run of separators between
them.  In an identifier (acquirer_ref, order numbers, rrn) a run of more
than 19 contiguous digits is an identifier and passes (28-digit WeChat and
Alipay numbers); elsewhere it is scanned as free text.
"""

from daozhang.agent.core.card_data import (
    SEPARATORS, mask_card_numbers, might_hold_card_number)

_FULL_WIDTH = dict((0xFF10 + i, 0x30 + i) for i in range(10))
MAX_CARD_TEXT = 40


def mask_cell(text, identifier=False):
    """(text with every card number cut to 6 + 4, whether any was found)."""
    if not text or not might_hold_card_number(text):
        return text, False
    masked, count = mask_card_numbers(text, identifier)
    return masked, count > 0


def mask_card_column(text):
    """A card column: whatever it holds keeps only 6 + 4 positions in clear.
    Separators are dropped; masking characters (* X x) stay masked."""
    kept = "".join("*" if c in "*Xx" else c for c in text.translate(_FULL_WIDTH)
                   if c not in SEPARATORS)
    if len(kept) >= 13:
        return kept[:6] + "*" * (len(kept) - 10) + kept[-4:]
    if len(kept) > 4:
        return "*" * (len(kept) - 4) + kept[-4:]
    return kept
