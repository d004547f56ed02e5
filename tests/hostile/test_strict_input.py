"""Duplicate JSON keys refused (bad_json) at the intake and in the CLI; card
data refused in CLI arguments that get written; `journal append --now`."""

import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core import strict_json
from daozhang.agent.core.business_calendar import format_rfc3339
from daozhang.agent.core.intake import intake_frames
from daozhang.signing import generate_keypair
from dztest.agent_daemon import sale
from dztest.micropython import run_micropython

DUPLICATES = [
    ('{"amount": 1250, "amount": 99999}', "$"),
    ('{"v":1,"id":1,"op":"submit","txn":{"amount":1250,"amount":99999}}', "$.txn"),
    ('{"card":"4111111111111111","card":"411111******1111"}', "$"),
    ('{"a": 1, "\\u0061": 2}', "$"),                          # the same key, escaped
    ('[{"x": [{}, {"k": 1, "k": 1}]}]', "$[0].x[1]"),
    ('{"4111111111111111": {"a": 1, "a": 2}}', "$.?"),        # a key is never shown
]
UNIQUE = ['{"a": {"b": 1}, "c": {"b": 1}}', '{"a": "\\"a\\": 1, \\"a\\""}', '[{"a":1},{"a":1}]',
          '{"a:": 1, "a": 2}', '{}', '[]', '"a"', '{"a\\\\": 1, "a": 2}']


@pytest.mark.parametrize("text,path", DUPLICATES)
def test_duplicate_keys_are_refused_with_where(text, path):
    with pytest.raises(strict_json.DuplicateKey) as info:
        strict_json.loads(text)
    assert info.value.path == path
    assert strict_json._first_duplicate(text) == path       # the portable scanner agrees
    assert "4111" not in str(info.value) and "amount" not in str(info.value)


@pytest.mark.parametrize("text", UNIQUE)
def test_distinct_keys_pass(text):
    assert strict_json.loads(text) == json.loads(text)
    assert strict_json._first_duplicate(text) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=15)


def _dump_doubling_one_pair(value, todo):
    """JSON text of `value`, the first pair of the first non-empty object
    written twice while todo[0] is True."""
    if isinstance(value, dict):
        pairs = [json.dumps(k) + ":" + _dump_doubling_one_pair(v, todo) for k, v in value.items()]
        if todo[0] and pairs:
            todo[0] = False
            pairs.insert(0, pairs[0])
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump_doubling_one_pair(v, todo) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_scanner_agrees_with_the_hook_on_any_json(value, ascii_only):
    """Invariant: text json.dumps wrote has no duplicate; the same value
    written with one pair repeated always has one, found both ways."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert strict_json._first_duplicate(text) is None and strict_json.loads(text) == value
    todo = [True]
    doubled = _dump_doubling_one_pair(value, todo)
    if not todo[0]:
        assert strict_json._first_duplicate(doubled) is not None
        with pytest.raises(strict_json.DuplicateKey):
            strict_json.loads(doubled)


def test_micropython_refuses_the_same_texts():
    code = ("import json\nfrom daozhang.agent.core import strict_json\n"
            "for t in json.loads(%r):\n"
            "    try:\n"
            "        strict_json.loads(t)\n"
            "        print('ok')\n"
            "    except strict_json.DuplicateKey as e:\n"
            "        print(e.path)\n" % json.dumps([t for t, _ in DUPLICATES] + UNIQUE))
    got = run_micropython(code).strip().splitlines()
    assert got == [p for _, p in DUPLICATES] + ["ok"] * len(UNIQUE)


def test_the_intake_frame_with_a_duplicate_key_is_bad_json_and_not_fatal():
    dec = intake_frames.FrameDecoder()
    body = DUPLICATES[1][0].encode()
    dec.receive_data(len(body).to_bytes(4, "big") + body + intake_frames.encode({"id": 2, "op": "ping"}))
    first = dec.next_event()
    assert first.error.code == "bad_json" and "$.txn" in str(first.error)
    assert dec.next_event().obj == {"id": 2, "op": "ping"}


# -- the CLI ----------------------------------------------------------------------

@pytest.fixture
def journal(tmp_path, run_main):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "j.dzj")
    code, out = run_main("journal", "init", path, "--device-id", "pos-1",
                         "--key", str(tmp_path / "dev.key"), "--size", "1MiB")
    assert code in (0, None), out
    return path


def append(run_main, tmp_path, journal, lines, *extra):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_main("journal", "append", journal, "--key", str(tmp_path / "dev.key"), *extra,
                    str(src))


def test_journal_append_refuses_a_duplicate_key_line(tmp_path, journal, run_main):
    good = json.dumps(sale("T-1"))
    doubled = good[:-1] + ', "amount": 99999}'
    code, out = append(run_main, tmp_path, journal, [doubled, good])
    assert code == 2
    assert "line 1: a key appears twice in the object at $" in out
    assert len([ln for ln in out.splitlines() if ln[:1].isdigit()]) == 1   # line 2 appended


def test_journal_append_with_now_refuses_a_stale_sale(tmp_path, journal, run_main):
    now = int(time.time())
    stale = json.dumps(sale("T-old", time=format_rfc3339(now - 31 * 86400, 8 * 3600)))
    fresh = json.dumps(sale("T-new", time=format_rfc3339(now - 3600, 8 * 3600)))
    code, out = append(run_main, tmp_path, journal, [stale, fresh], "--now", "system")
    assert code == 2 and "line 1: time: more than 30 day(s) before" in out
    code, out = append(run_main, tmp_path, journal, [stale], "--now", "yesterday")
    assert code == 2 and "--now" in out


@pytest.mark.parametrize("args", [
    ("journal", "init", "{tmp}/x.dzj", "--device-id", "6222021234567894", "--key", "{tmp}/dev.key"),
    ("journal", "init", "{tmp}/x.dzj", "--device-id", "pos-4111-1111-1111-1111",
     "--key", "{tmp}/dev.key"),
    ("pki", "device", "4111111111111111", "--ca", "{tmp}"),
    ("pki", "init", "--out", "{tmp}/ca", "--name", "CA 4111 1111 1111 1111"),
])
def test_cli_values_that_would_be_written_refuse_card_numbers(tmp_path, run_main, args):
    generate_keypair(str(tmp_path / "dev"))
    code, out = run_main(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and "holds card data" in out
    assert "1111" not in out and "7894" not in out
    assert not (tmp_path / "x.dzj").exists() and not (tmp_path / "ca").exists()


def test_txn_submit_refuses_duplicate_keys_before_connecting(tmp_path, run_main):
    code, out = run_main("txn", "submit", "--socket", str(tmp_path / "none.sock"),
                         "--json", '{"amount": 1, "amount": 2}')
    assert code == 2 and json.loads(out)["error"] == "bad_json" and "each key once" in out
