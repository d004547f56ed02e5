"""Times within reason (issue 12): a sale too far from the terminal's clock
is refused with time_out_of_range; the RFC 3339 parser raises only its own
error, whatever the year or offset.  Times are relative to now."""

import os
import time
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.business_calendar import format_rfc3339, parse_rfc3339_ms
from daozhang.agent.core.errors import ValidationError
from daozhang.agent.core.intake import txn
from daozhang.agent.intake_service import IntakeService, Refused
from daozhang.profile import ProfileError, validate_profile
from dztest.agent_daemon import sale
from dztest.sync import make_journal

EXAMPLE_PROFILE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "merchant.toml")
DAY = 86400
NOW_S = int(time.time())


def at(offset_s):
    """A sale time offset_s from NOW_S, written at +08:00."""
    return format_rfc3339(NOW_S + offset_s, 8 * 3600)


def check(offset_s, window=None):
    return txn.validate(sale("T-1", time=at(offset_s)), NOW_S * 1000, window)


@pytest.mark.parametrize("offset_s", [0, -29 * DAY, -30 * DAY, 23 * 3600, DAY])
def test_times_inside_the_default_window_pass(offset_s):
    assert check(offset_s)["time"] == at(offset_s)


@pytest.mark.parametrize("offset_s", [-30 * DAY - 1, -365 * DAY, DAY + 1, 30 * DAY])
def test_times_outside_the_default_window_are_refused(offset_s):
    with pytest.raises(ValidationError) as info:
        check(offset_s)
    assert (info.value.code, info.value.field) == ("time_out_of_range", "time")


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59+14:00", "0000-01-01T00:00:00+14:00",
                                  "0000-01-01T00:00:00-23:59", "9999-12-31T23:59:60.999999999Z"])
def test_extreme_years_and_offsets_are_out_of_range_not_a_crash(text):
    with pytest.raises(ValidationError) as info:
        txn.validate(sale("T-1", time=text), NOW_S * 1000)
    assert info.value.code == "time_out_of_range"


def test_a_configured_window():
    window = txn.time_window({"sale_time": {"days_back": 2, "days_ahead": 0}})
    assert window == (2 * DAY * 1000, 0)
    assert check(-DAY, window)
    for offset_s in (-3 * DAY, 60):
        with pytest.raises(ValidationError) as info:
            check(offset_s, window)
        assert info.value.code == "time_out_of_range"


def test_without_now_the_time_is_checked_for_form_only():
    assert txn.validate(sale("T-1", time="2001-01-01T00:00:00Z"))["time"] == "2001-01-01T00:00:00Z"


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                     r"(\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z") | st.text(max_size=40))
def test_rfc3339_parsers_raise_only_their_own_error(text):
    """Invariant: both parsers answer any text; parse raises only ValidationError."""
    assert txn.rfc3339_ok(text) in (True, False)
    try:
        parse_rfc3339_ms(text)
    except ValidationError:
        pass


# -- at the intake, with the window from the merchant profile ---------------------

@pytest.fixture
def journal(tmp_path):
    journal = make_journal(tmp_path, device="pos-t", size=1 << 20)[1]
    yield journal
    journal.close()


def test_the_intake_refuses_a_stale_sale_and_journals_nothing(journal):
    svc = IntakeService(journal, profile={"merchant_id": sale("x")["merchant_id"],
                                          "terminal_id": sale("x")["terminal_id"],
                                          "sale_time": {"days_back": 7, "days_ahead": 1}})
    before = journal.stats()["next_seq"]
    for offset_s in (-8 * DAY, 2 * DAY):
        with pytest.raises(Refused) as info:
            svc.submit(sale("T-%d" % offset_s, time=at(offset_s)))
        assert (info.value.code, info.value.field) == ("time_out_of_range", "time")
    assert journal.stats()["next_seq"] == before
    assert svc.submit(sale("T-ok", time=at(-6 * DAY)))["seq"] == before


def test_the_profile_validates_its_sale_time_table():
    with open(EXAMPLE_PROFILE, "rb") as f:
        base = tomllib.load(f)
    assert validate_profile(base)["sale_time"] == {"days_back": 30, "days_ahead": 1}
    del base["sale_time"]
    assert validate_profile(base)["sale_time"] == {"days_back": 30, "days_ahead": 1}
    base["sale_time"] = {"days_back": 90, "days_ahead": 0}
    assert validate_profile(base)["sale_time"] == {"days_back": 90, "days_ahead": 0}
    for bad in ({"days_back": 0}, {"days_ahead": -1}, {"days_back": "30"}, {"weeks": 1}):
        base["sale_time"] = bad
        with pytest.raises(ProfileError) as info:
            validate_profile(base)
        assert "sale_time" in str(info.value)


def test_the_intake_judges_by_the_clock_it_is_given(journal):
    # The daemon passes its own clock (a simulated one in the demo and tests).
    later = (NOW_S + 40 * DAY) * 1000
    svc = IntakeService(journal, now_ms=lambda: later)
    with pytest.raises(Refused) as info:
        svc.submit(sale("T-now", time=at(0)))             # 40 days before that clock
    assert info.value.code == "time_out_of_range"
    assert svc.submit(sale("T-then", time=at(40 * DAY - 3600)))["seq"] > 0
