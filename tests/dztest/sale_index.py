"""Test helpers: the settlement watchdog over both sale indexes."""

from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.agent.sale_index_sqlite import SqliteSaleIndex

CST = 8 * 3600


class _Geo:
    journal_id = b"\x11" * 16


class _Ring:
    next_seq = 1 << 40


class FakeJournal:
    """What an index reads of a journal when it opens: its id and head."""
    geo = _Geo()
    ring = _Ring()


def sqlite_index():
    return SqliteSaleIndex(None, FakeJournal())      # no path: a private in-memory file


def watchdog_pair(profile):
    """(over MemorySaleIndex, over SqliteSaleIndex), the same profile and calendar."""
    cal = BusinessCalendar.from_profile(profile, FixedOffset(CST))
    return (SettlementWatchdog(profile, cal),
            SettlementWatchdog(profile, cal, index=sqlite_index()))


def flash_index(files=None):
    """The firmware's on-flash index over RAM "files" (firmware/flash_records.py)."""
    from daozhang.firmware.flash_records import MemoryFiles
    from daozhang.firmware.sale_index_flash import FlashSaleIndex
    return FlashSaleIndex(MemoryFiles() if files is None else files, FakeJournal.geo.journal_id)


def watchdog_flash_pair(profile):
    """(over MemorySaleIndex, over the firmware's FlashSaleIndex), the same profile and calendar."""
    cal = BusinessCalendar.from_profile(profile, FixedOffset(CST))
    return (SettlementWatchdog(profile, cal),
            SettlementWatchdog(profile, cal, index=flash_index()))
