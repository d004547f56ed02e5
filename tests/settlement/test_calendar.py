"""The deadline calculator: unit cases and property tests across time zones,
cut-off edges and holiday runs, against an independent reference built on
datetime and zoneinfo."""

import datetime
import zoneinfo

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.business_calendar import (
    BusinessCalendar, FixedOffset, civil_from_days, days_from_civil, format_rfc3339,
    parse_date, parse_hhmm, parse_rfc3339, parse_rfc3339_ms, weekday)
from daozhang.agent.core.errors import LocalError, ValidationError
from daozhang.timezone import timezone_for

ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/London", "Europe/Berlin",
         "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns",
         "Pacific/Kiritimati", "Pacific/Apia", "America/Santiago"]
EPOCH_DATE = datetime.date(1970, 1, 1)


def _day(d):
    return (d - EPOCH_DATE).days


def reference_deadline(sale_utc, zone, cutoff, holidays, workdays, n):
    """Independent: datetime arithmetic, zoneinfo, fold=0 on DST edges."""
    z = zoneinfo.ZoneInfo(zone)
    local = datetime.datetime.fromtimestamp(sale_utc, datetime.timezone.utc).astimezone(z)

    def business(d):
        return d in workdays or (d.weekday() < 5 and d not in holidays)

    def following(d):
        d += datetime.timedelta(days=1)
        while not business(d):
            d += datetime.timedelta(days=1)
        return d

    d = local.date()
    if not (business(d) and local.time().replace(tzinfo=None) < cutoff):
        d = following(d)
    for _ in range(n):
        d = following(d)
    return int(datetime.datetime.combine(d, cutoff).replace(tzinfo=z, fold=0).timestamp())


# -- unit cases ----------------------------------------------------------------

def test_civil_round_trip_known_dates():
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11017
    assert civil_from_days(-1) == (1969, 12, 31)
    assert weekday(days_from_civil(2027, 1, 1)) == 4  # a Friday


def test_shanghai_t1_around_new_year():
    cal = BusinessCalendar(FixedOffset(8 * 3600), parse_hhmm("23:00"), ["2027-01-01"])
    thursday = parse_rfc3339("2026-12-31T10:00:00+08:00")
    after_cutoff = parse_rfc3339("2026-12-31T23:00:00+08:00")
    assert format_rfc3339(cal.deadline(thursday, "T1", 120), 28800) == "2027-01-04T23:00:00+08:00"
    # a sale at exactly the cut-off belongs to the next business day (Mon 4th)
    assert format_rfc3339(cal.deadline(after_cutoff, "T1", 120), 28800) == "2027-01-05T23:00:00+08:00"
    assert format_rfc3339(cal.deadline(after_cutoff - 1, "T1", 120), 28800) == "2027-01-04T23:00:00+08:00"
    assert cal.deadline(thursday, "D0", 120) == thursday + 7200
    assert format_rfc3339(cal.deadline(thursday, "T0", 120), 28800) == "2026-12-31T23:00:00+08:00"


def test_workday_on_a_weekend_counts():
    cal = BusinessCalendar(FixedOffset(8 * 3600), 23 * 60, ["2026-10-08"], ["2026-10-10"])
    fri = parse_rfc3339("2026-10-09T12:00:00+08:00")
    assert format_rfc3339(cal.deadline(fri, "T1", 1), 28800) == "2026-10-10T23:00:00+08:00"


def test_escalation_is_one_business_day_later():
    cal = BusinessCalendar(FixedOffset(8 * 3600), 23 * 60, ["2027-01-01"])
    deadline = parse_rfc3339("2026-12-31T23:00:00+08:00")
    assert format_rfc3339(cal.one_business_day_later(deadline), 28800) == "2027-01-04T23:00:00+08:00"


def test_endless_holidays_refused():
    days = [days_from_civil(2027, 1, 1) + i for i in range(100)]
    cal = BusinessCalendar(FixedOffset(0), 0, days)
    with pytest.raises(LocalError, match="no business day"):
        cal.deadline(days[0] * 86400, "T1", 1)


@pytest.mark.parametrize("bad", ["2027-13-01", "2027-02-29", "27-01-01", "2027/01/01", 20270101])
def test_parse_date_refuses(bad):
    with pytest.raises(ValidationError):
        parse_date(bad)


@pytest.mark.parametrize("bad", ["24:00", "7:00", "23:60", "2300", None])
def test_parse_hhmm_refuses(bad):
    with pytest.raises(ValidationError):
        parse_hhmm(bad)


@pytest.mark.parametrize("bad", ["2026-12-31T10:00:00", "2026-12-31T10:00:00+8:00",
                                 "2026-12-31X10:00:00Z", "2026-12-31T10:00:00.Z", 17])
def test_parse_rfc3339_refuses(bad):
    with pytest.raises(ValidationError):
        parse_rfc3339(bad)


def test_dst_gap_and_fold_are_deterministic():
    ny = timezone_for("America/New_York")
    # 2026-03-08 02:30 does not exist in New York: it becomes 03:30 EDT
    gap_local = days_from_civil(2026, 3, 8) * 86400 + 2 * 3600 + 1800
    assert format_rfc3339(ny.local_to_utc(gap_local), -4 * 3600) == "2026-03-08T03:30:00-04:00"
    # 2026-11-01 01:30 happens twice: the earlier (EDT) one is chosen
    fold_local = days_from_civil(2026, 11, 1) * 86400 + 3600 + 1800
    assert format_rfc3339(ny.local_to_utc(fold_local), -4 * 3600) == "2026-11-01T01:30:00-04:00"


def test_unknown_zone_is_a_local_error():
    with pytest.raises(LocalError, match="IANA"):
        timezone_for("Mars/Olympus_Mons")


# -- properties ----------------------------------------------------------------

dates = st.dates(min_value=datetime.date(1995, 1, 1), max_value=datetime.date(2060, 12, 31))
cutoffs = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def calendars(draw):
    zone = draw(st.sampled_from(ZONES))
    cutoff = draw(cutoffs)
    sale_date = draw(dates)
    # a holiday run starting near the sale, plus scattered holidays and workdays
    start = sale_date + datetime.timedelta(days=draw(st.integers(-3, 10)))
    run = [start + datetime.timedelta(days=i) for i in range(draw(st.integers(0, 20)))]
    scattered = draw(st.lists(st.integers(-5, 40), max_size=8))
    holidays = set(run) | set(sale_date + datetime.timedelta(days=i) for i in scattered)
    workdays = set(d for d in (sale_date + datetime.timedelta(days=i)
                               for i in draw(st.lists(st.integers(-2, 30), max_size=3)))
                   if d.weekday() >= 5)
    # a sale close to the cut-off (either side) or anywhere in the day
    if draw(st.booleans()):
        delta = draw(st.integers(-180, 180))
    else:
        delta = draw(st.integers(-86400, 86400))
    z = zoneinfo.ZoneInfo(zone)
    base = datetime.datetime.combine(sale_date, cutoff).replace(tzinfo=z)
    sale_utc = int(base.timestamp()) + delta
    return zone, cutoff, holidays, workdays, sale_utc


@settings(max_examples=400, deadline=None)
@given(calendars(), st.integers(0, 3))
def test_deadline_matches_reference(case, n):
    zone, cutoff, holidays, workdays, sale_utc = case
    tz = timezone_for(zone)
    cal = BusinessCalendar(tz, cutoff.hour * 60 + cutoff.minute,
                           [d.isoformat() for d in holidays], [d.isoformat() for d in workdays])
    got = cal.deadline(sale_utc, "T%d" % n, 30)
    assert got == reference_deadline(sale_utc, zone, cutoff, holidays, workdays, n)
    # invariants: later than the sale (T1+), on a business day
    if n >= 1:
        assert got > sale_utc
    day, sod = cal.local_day(got)
    # on a business day at the cut-off, unless the cut-off fell in a DST gap
    assert cal.is_business_day(day) or sod != cal.cutoff_seconds
    z = zoneinfo.ZoneInfo(zone)
    local = datetime.datetime.fromtimestamp(got, datetime.timezone.utc).astimezone(z)
    assert _day(local.date()) == day


@settings(max_examples=200, deadline=None)
@given(calendars(), st.integers(1, 7200))
def test_deadline_never_moves_earlier_for_a_later_sale(case, later):
    zone, cutoff, holidays, workdays, sale_utc = case
    cal = BusinessCalendar(timezone_for(zone), cutoff.hour * 60 + cutoff.minute, holidays=[
        d.isoformat() for d in holidays], workdays=[d.isoformat() for d in workdays])
    assert cal.deadline(sale_utc, "T1", 5) <= cal.deadline(sale_utc + later, "T1", 5)


@given(st.integers(-800000, 2000000))
def test_days_from_civil_matches_datetime(n):
    d = datetime.date.fromordinal(n + EPOCH_DATE.toordinal()) if 1 <= n + 719163 <= 3652059 else None
    if d is not None:
        assert civil_from_days(n) == (d.year, d.month, d.day)
        assert days_from_civil(d.year, d.month, d.day) == n
    y, m, dd = civil_from_days(n)
    assert days_from_civil(y, m, dd) == n


@given(st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2999, 1, 1)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59), st.booleans())
def test_rfc3339_matches_datetime(when, offset_minutes, fraction):
    tz = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    aware = when.replace(tzinfo=tz)
    text = aware.isoformat(timespec="microseconds" if fraction else "seconds")
    assert parse_rfc3339(text) == int(aware.replace(microsecond=0).timestamp())
    assert parse_rfc3339(format_rfc3339(parse_rfc3339(text), offset_minutes * 60)) == parse_rfc3339(text)


@given(st.one_of(st.text(max_size=40),
                st.from_regex(r"\A\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d*)?([Zz]|[+-]\d\d:\d\d)?\Z")))
def test_rfc3339_parses_or_raises_validation_error(text):
    """Invariant: arbitrary text parses to an int or raises ValidationError."""
    try:
        assert isinstance(parse_rfc3339(text), int)
    except ValidationError:
        pass


@given(st.integers(-86399, 86399), st.integers(-2 ** 34, 2 ** 34))
def test_fixed_offset_round_trip(offset, utc):
    tz = FixedOffset(offset)
    assert tz.local_to_utc(utc + tz.utcoffset_seconds(utc)) == utc


@given(st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2999, 1, 1)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59))
def test_rfc3339_ms_matches_datetime(when, offset_minutes):
    aware = when.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=offset_minutes)))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    want = (aware - epoch) // datetime.timedelta(milliseconds=1)
    assert parse_rfc3339_ms(aware.isoformat(timespec="microseconds")) == want


@settings(max_examples=100, deadline=None)
@given(calendars(), st.integers(0, 999))
def test_deadline_ms_agrees_with_seconds(case, millis):
    zone, cutoff, holidays, workdays, sale_utc = case
    cal = BusinessCalendar(timezone_for(zone), cutoff.hour * 60 + cutoff.minute, holidays=[
        d.isoformat() for d in holidays], workdays=[d.isoformat() for d in workdays])
    sale_ms = sale_utc * 1000 + millis
    assert cal.deadline_ms(sale_ms, "T1", 5) == cal.deadline(sale_utc, "T1", 5) * 1000
    assert cal.deadline_ms(sale_ms, "D0", 5) == sale_ms + 300000
