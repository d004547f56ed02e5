"""Business days and settlement deadlines (docs/SPEC.md §7.2).

Portable: civil-date arithmetic is done by hand (Howard Hinnant's
days-from-civil), so this runs unchanged on MicroPython, which has no
datetime.  Every instant here is an int of UTC epoch seconds (the checks,
watchdog and alerts work in Unix milliseconds, SPEC 2, through the *_ms
methods).  A "day" is an int: days since 1970-01-01 (the civil date, not an instant).  "Local epoch
seconds" are the seconds since 1970-01-01T00:00 of local wall time, counted
as if the wall clock were UTC; a time zone converts between the two.

A time zone is any object with two methods:
    utcoffset_seconds(utc_epoch_seconds) -> int   (east of UTC positive)
    local_to_utc(local_epoch_seconds) -> int
`FixedOffset` below is one; daozhang/timezone.py builds one from zoneinfo on
CPython.  local_to_utc must be deterministic on DST edges: a wall time in a
gap (spring forward) uses the offset in force before the gap, so it lands
after the gap (02:30 -> 03:30 DST); a wall time in a fold (fall back) maps
to the earlier instant.  This is zoneinfo's fold=0 rule.
"""

from daozhang.agent.core.errors import LocalError, ValidationError

DAY_SECONDS = 86400
# A run of non-business days longer than this is a broken calendar, not a
# holiday: we refuse rather than loop (Spring Festival is 8-9 days).
MAX_NON_BUSINESS_RUN = 62


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    if month <= 2:
        year -= 1
    era = year // 400
    yoe = year - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days):
    """(year, month, day) of a day number; the inverse of days_from_civil."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return (year, month, day)


def weekday(days):
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _days_in_month(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def is_ascii_digits(text):
    """str.isdigit() also accepts '²' and '３'; identifiers and times may not."""
    if not isinstance(text, str) or not text:
        return False
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


_ASCII_DIGITS = "0123456789"


def _digits(text, start, count, field):
    part = text[start:start + count]
    # strip() leaves nothing exactly when every char is an ASCII digit (C
    # speed on both interpreters; per-sale on the intake path).
    if len(part) != count or part.strip(_ASCII_DIGITS):
        raise ValidationError(field, "expected digits at offset %d in %r" % (start, text))
    return int(part)


def parse_date(text, field="date"):
    """'YYYY-MM-DD' -> day number; ValidationError names the field."""
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValidationError(field, "expected a date YYYY-MM-DD, got %r" % (text,))
    year = _digits(text, 0, 4, field)
    month = _digits(text, 5, 2, field)
    day = _digits(text, 8, 2, field)
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise ValidationError(field, "no such date %r" % (text,))
    return days_from_civil(year, month, day)


def format_date(days):
    return "%04d-%02d-%02d" % civil_from_days(days)


def parse_hhmm(text, field="cutoff"):
    """'HH:MM' (00:00 to 23:59) -> minutes after local midnight."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise ValidationError(field, "expected a local time HH:MM, got %r" % (text,))
    hours = _digits(text, 0, 2, field)
    minutes = _digits(text, 3, 2, field)
    if hours > 23 or minutes > 59:
        raise ValidationError(field, "expected 00:00 to 23:59, got %r" % (text,))
    return hours * 60 + minutes


def parse_rfc3339(text, field="time"):
    """RFC 3339 date-time with offset -> UTC epoch seconds (fraction floored).

    Accepts 'T', 't' or ' ' between date and time, and 'Z', 'z' or +HH:MM.
    """
    return parse_rfc3339_parts(text, field)[0]


def parse_rfc3339_ms(text, field="time"):
    """RFC 3339 date-time with offset -> Unix milliseconds (SPEC 2: the
    unit of every journaled time); digits beyond the millisecond dropped."""
    seconds, millis = parse_rfc3339_parts(text, field)
    return seconds * 1000 + millis


def parse_rfc3339_parts(text, field="time", strict=False):
    """The core's one RFC 3339 parser: (UTC epoch seconds, milliseconds).

    Lenient (settlement files, the CLI): 'T', 't' or ' ' after the date,
    'Z' or 'z', any number of fraction digits.  `strict` is the intake's
    sale time (SPEC 4.3): 'T' and 'Z' only, 1 to 9 fraction digits, at
    most 35 characters.  ValidationError names the field otherwise."""
    if not isinstance(text, str) or len(text) < 20 or (strict and len(text) > 35):
        raise ValidationError(field, "expected RFC 3339 time with offset, got %r" % (text,))
    day = parse_date(text[:10], field)
    if text[10] not in ("T" if strict else "Tt "):
        raise ValidationError(field, "expected 'T' after the date in %r" % (text,))
    if text[13] != ":" or text[16] != ":":
        raise ValidationError(field, "expected HH:MM:SS in %r" % (text,))
    hours = _digits(text, 11, 2, field)
    minutes = _digits(text, 14, 2, field)
    seconds = _digits(text, 17, 2, field)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValidationError(field, "time of day out of range in %r" % (text,))
    rest = text[19:]
    millis = 0
    if rest[:1] == ".":
        end = 1
        while end < len(rest) and "0" <= rest[end] <= "9":
            end += 1
        if end == 1:
            raise ValidationError(field, "empty fraction in %r" % (text,))
        if strict and end > 10:
            raise ValidationError(field, "more than 9 fraction digits in %r" % (text,))
        millis = int((rest[1:end] + "00")[:3])
        rest = rest[end:]
    if rest == "Z" or (rest == "z" and not strict):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        oh = _digits(rest, 1, 2, field)
        om = _digits(rest, 4, 2, field)
        if oh > 23 or om > 59:
            raise ValidationError(field, "offset out of range in %r" % (text,))
        offset = (oh * 3600 + om * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValidationError(field, "expected 'Z' or +HH:MM offset in %r" % (text,))
    # A leap second (:60) is counted as the next second's start.
    local = day * DAY_SECONDS + hours * 3600 + minutes * 60 + seconds
    return (local - offset, millis)


def format_rfc3339(utc, offset_seconds=0):
    """UTC epoch seconds -> 'YYYY-MM-DDTHH:MM:SS+HH:MM' at a fixed offset."""
    local = utc + offset_seconds
    day, sod = local // DAY_SECONDS, local % DAY_SECONDS
    if offset_seconds == 0:
        zone = "Z"
    else:
        sign = "+" if offset_seconds > 0 else "-"
        magnitude = abs(offset_seconds) // 60
        zone = "%s%02d:%02d" % (sign, magnitude // 60, magnitude % 60)
    return "%sT%02d:%02d:%02d%s" % (format_date(day), sod // 3600, sod // 60 % 60, sod % 60, zone)


class FixedOffset:
    """A time zone with one constant offset (the MicroPython default)."""

    def __init__(self, offset_seconds, name=None):
        if not isinstance(offset_seconds, int) or not -86399 <= offset_seconds <= 86399:
            raise LocalError("offset must be int seconds within a day, got %r" % (offset_seconds,))
        self.offset_seconds = offset_seconds
        self.name = name or format_rfc3339(0, offset_seconds)[19:]

    def utcoffset_seconds(self, utc_epoch_seconds):
        return self.offset_seconds

    def local_to_utc(self, local_epoch_seconds):
        return local_epoch_seconds - self.offset_seconds


def parse_mode(mode):
    """'D0' -> ('D', 0); 'T1', 'T2', 'Tn' -> ('T', n).  Raises ValidationError."""
    if isinstance(mode, str) and len(mode) >= 2 and is_ascii_digits(mode[1:]):
        if mode == "D0":
            return ("D", 0)
        if mode[0] == "T":
            return ("T", int(mode[1:]))
    raise ValidationError("settlement", "expected D0 or Tn (T1, T2, ...), got %r" % (mode,))


def _day_set(dates, field):
    """'YYYY-MM-DD' strings or day numbers -> a set of day numbers."""
    return set(d if isinstance(d, int) else parse_date(d, field) for d in dates)


class BusinessCalendar:
    """Business days of one merchant: Monday to Friday, minus `holidays`,
    plus `workdays` (weekend days that are working days, 调休).

    holidays/workdays are 'YYYY-MM-DD' strings or day numbers.
    """

    def __init__(self, tz, cutoff_minutes, holidays=(), workdays=()):
        if not isinstance(cutoff_minutes, int) or not 0 <= cutoff_minutes < 1440:
            raise LocalError("cutoff_minutes must be 0..1439, got %r" % (cutoff_minutes,))
        self.tz = tz
        self.cutoff_seconds = cutoff_minutes * 60
        self.holidays = _day_set(holidays, "holidays")
        self.workdays = _day_set(workdays, "workdays")

    @classmethod
    def from_profile(cls, profile, tz):
        s = profile["settlement"]
        return cls(tz, s["cutoff_minutes"], s.get("holidays", ()), s.get("workdays", ()))

    def is_business_day(self, day):
        if day in self.workdays:
            return True
        return weekday(day) < 5 and day not in self.holidays

    def next_business_day(self, day):
        """The first business day strictly after `day`."""
        for _ in range(MAX_NON_BUSINESS_RUN):
            day += 1
            if self.is_business_day(day):
                return day
        raise LocalError("no business day within %d days after %s: check the holidays"
                         % (MAX_NON_BUSINESS_RUN, format_date(day - MAX_NON_BUSINESS_RUN)))

    def local_day(self, utc):
        """(day number, seconds after local midnight) of an instant."""
        local = utc + self.tz.utcoffset_seconds(utc)
        return (local // DAY_SECONDS, local % DAY_SECONDS)

    def at_local(self, day, seconds_of_day):
        return self.tz.local_to_utc(day * DAY_SECONDS + seconds_of_day)

    def business_date(self, sale_utc):
        """The business day a sale belongs to (SPEC 7.2).

        The local date of the sale, if that is a business day and the sale
        was made before the cut-off; otherwise the next business day.  A sale
        at exactly the cut-off belongs to the next business day (the
        acquirer's day has closed).
        """
        day, sod = self.local_day(sale_utc)
        if self.is_business_day(day) and sod < self.cutoff_seconds:
            return day
        return self.next_business_day(day)

    def deadline(self, sale_utc, mode, d0_within_minutes):
        """UTC instant by which a sale must be settled.

        D0: sale time + d0_within_minutes.  Tn: the cut-off on the nth
        business day after the sale's business date (T0: that date's).
        """
        letter, n = parse_mode(mode)
        if letter == "D":
            return sale_utc + d0_within_minutes * 60
        day = self.business_date(sale_utc)
        for _ in range(n):
            day = self.next_business_day(day)
        return self.at_local(day, self.cutoff_seconds)

    def one_business_day_later(self, utc):
        """The same local wall time on the next business day (escalation)."""
        day, sod = self.local_day(utc)
        return self.at_local(self.next_business_day(day), sod)

    # -- the same in Unix milliseconds (SPEC 2), for checks, watchdog, alerts --

    def deadline_ms(self, sale_ms, mode, d0_within_minutes):
        """deadline() for a sale time in ms; the business date is judged on
        the whole second (a sale at 22:59:59.999 is before a 23:00 cut-off)."""
        letter, _ = parse_mode(mode)
        if letter == "D":
            return sale_ms + d0_within_minutes * 60000
        return self.deadline(sale_ms // 1000, mode, d0_within_minutes) * 1000

    def one_business_day_later_ms(self, utc_ms):
        return self.one_business_day_later(utc_ms // 1000) * 1000 + utc_ms % 1000
