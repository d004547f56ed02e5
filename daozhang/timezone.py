"""An IANA time zone for the portable calendar, built from zoneinfo (CPython).

The portable core (agent/core/business_calendar.py) needs only two methods;
this adapter answers them from the system's tz database.  DST edges follow
zoneinfo's fold=0 rule, which the core documents: a wall time in a gap uses
the offset before the gap (so 02:30 becomes 03:30 DST), a wall time in a
fold maps to the earlier instant.
"""

import datetime
import zoneinfo

from daozhang.agent.core.errors import LocalError

_EPOCH = datetime.datetime(1970, 1, 1)


class ZoneInfoTimezone:
    def __init__(self, name):
        try:
            self.zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise LocalError("unknown time zone %r (expected an IANA name such as "
                             "Asia/Shanghai): %s" % (name, exc)) from None
        self.name = name

    def utcoffset_seconds(self, utc_epoch_seconds):
        moment = datetime.datetime.fromtimestamp(utc_epoch_seconds, datetime.timezone.utc)
        return int(moment.astimezone(self.zone).utcoffset().total_seconds())

    def local_to_utc(self, local_epoch_seconds):
        naive = _EPOCH + datetime.timedelta(seconds=local_epoch_seconds)
        aware = naive.replace(tzinfo=self.zone, fold=0)
        return local_epoch_seconds - int(aware.utcoffset().total_seconds())

    def __repr__(self):
        return "ZoneInfoTimezone(%r)" % (self.name,)


def timezone_for(name):
    """A time zone object for an IANA name ('UTC' included)."""
    return ZoneInfoTimezone(name)
