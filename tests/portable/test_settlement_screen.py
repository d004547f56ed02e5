"""The agent's screen of a settlement ack before the watchdog (SPEC 7.8.3
rule 2, core/settlement_ack.screen) on both interpreters: redelivery,
replay, stale, fresh; and the digest that tells a redelivery from a replay.

Invariant: an id already accepted is never FRESH, whatever its age or the
clock; an unknown id is REPLAY or REDELIVERED never; STALE only on a trusted
clock and strictly outside the window."""

from daozhang.agent.core.sync import settlement_ack as sa

WINDOW = 35 * 86400000
NOW = 1800000000000


def test_the_same_bytes_again_are_a_redelivery_whatever_their_age():
    d = sa.ack_digest(b"ack bytes")
    for at in (NOW, NOW - WINDOW - 1, 0):
        for trusted in (True, False):
            assert sa.screen(d, d, at, NOW, trusted, WINDOW) == sa.REDELIVERED


def test_an_accepted_id_on_other_bytes_is_a_replay():
    kept, other = sa.ack_digest(b"first"), sa.ack_digest(b"second")
    assert kept != other and len(kept) == sa.DIGEST_SIZE
    for at in (NOW, NOW - WINDOW - 1):
        for trusted in (True, False):
            assert sa.screen(kept, other, at, NOW, trusted, WINDOW) == sa.REPLAY


def test_a_new_id_is_stale_only_outside_the_window_on_a_trusted_clock():
    d = sa.ack_digest(b"new")
    assert sa.screen(None, d, NOW - WINDOW - 1, NOW, True, WINDOW) == sa.STALE
    assert sa.screen(None, d, NOW - WINDOW, NOW, True, WINDOW) == sa.FRESH       # the edge is inside
    assert sa.screen(None, d, NOW - WINDOW - 1, NOW, False, WINDOW) == sa.FRESH  # no age proven
    assert sa.screen(None, d, NOW + 60000, NOW, True, WINDOW) == sa.FRESH       # ahead of our clock


def test_the_verdicts_over_a_grid_keep_the_invariant():
    digests = (None, sa.ack_digest(b"a"), sa.ack_digest(b"b"))
    mine = sa.ack_digest(b"a")
    for known in digests:
        for trusted in (True, False):
            for age in (-1, 0, 1, WINDOW - 1, WINDOW, WINDOW + 1, 10 * WINDOW):
                v = sa.screen(known, mine, NOW - age, NOW, trusted, WINDOW)
                if known is not None:
                    assert v == (sa.REDELIVERED if known == mine else sa.REPLAY)
                elif v == sa.STALE:
                    assert trusted and age > WINDOW
                else:
                    assert v == sa.FRESH and not (trusted and age > WINDOW)


def test_the_digest_is_the_first_8_bytes_of_sha256():
    # SPEC 7.8.3: SHA-256("abc") begins ba7816bf8f01cfea.
    assert sa.ack_digest(b"abc") == bytes.fromhex("ba7816bf8f01cfea")
