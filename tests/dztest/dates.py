"""Dates for test fixtures, relative to now: the suite must pass on any date.

A sale dated a fixed day goes overdue a week after the test was written
(the settlement watchdog compares it with the real clock): thousands of
alerts, and the daemon and sync tests time out.  Fixtures date their sales
from here instead.

SALE_TIME is fixed once per test process (an hour before the process
started, in the merchant's zone of examples/merchant.toml), so the same
`sale("T-1")` built twice is the same submission: idempotency tests depend
on that.  Sales an hour old are T1 sales with more than a business day to
settle, so none goes overdue while the suite runs.

A test that needs a fixed date (a vector, a calendar rule) may use one, as
long as the code under test gets a fixed `now` too.
"""

import time

from daozhang.agent.core.business_calendar import format_rfc3339

CST = 8 * 3600            # examples/merchant.toml: Asia/Shanghai, no DST
HOUR_MS = 3600000
DAY_MS = 86400000


def now_ms():
    return time.time_ns() // 1000000


def rfc3339(ms, offset_s=CST):
    """RFC 3339 text of epoch milliseconds `ms`, whole seconds, at UTC offset `offset_s`."""
    return format_rfc3339(ms // 1000, offset_s)


def ago(ms):
    """RFC 3339 text, in the merchant's zone, of `ms` milliseconds before now."""
    return rfc3339(now_ms() - ms)


SESSION_MS = now_ms()
SALE_MS = SESSION_MS - HOUR_MS
SALE_TIME = rfc3339(SALE_MS)
