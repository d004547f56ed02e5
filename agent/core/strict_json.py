"""JSON from outside, with duplicate keys refused (SPEC 4.5, 5.3).

`{"amount": 1250, "amount": 99999}` is valid JSON to most parsers, and they
disagree on which value wins (Python keeps the last, others the first or
refuse).  A POS, a file or an operator that sends it has made a mistake we
must not guess at, so `loads(text)` raises DuplicateKey for a key repeated
in any object at any depth, and ValueError for anything that is not JSON.

The message never names the key: a key may itself be card data.

CPython uses json's object_pairs_hook (the C scanner still parses).
MicroPython's json has no hook, so there the text, once json accepted it,
is walked by `_first_duplicate`: a small scanner that only needs to find
keys, since the text is already known to be valid JSON.
Portable: CPython and MicroPython.
"""

import json
import sys


class DuplicateKey(ValueError):
    """A JSON object repeats a key.  `path` is where: '$', '$.txn', '$[2]'."""

    def __init__(self, path):
        super().__init__("a key appears twice in the object at " + path)
        self.path = path


def _unique_pairs(pairs):
    out = dict(pairs)           # in C: a repeated key shows as a shorter dict
    if len(out) != len(pairs):
        # The hook does not know where it is; the scan below does.
        raise DuplicateKey("?")
    return out


def loads(text):
    """Decode JSON text (str); refuse duplicate keys with DuplicateKey."""
    if _DECODER is not None:
        try:
            if type(text) is str:
                return _DECODER.decode(text)
            return json.loads(text, object_pairs_hook=_unique_pairs)   # bytes: json finds the encoding
        except DuplicateKey:
            path = _first_duplicate(text)
            raise DuplicateKey(path or "?") from None
    obj = json.loads(text)
    path = _first_duplicate(text)
    if path is not None:
        raise DuplicateKey(path)
    return obj


def _first_duplicate(text):
    """Where the first repeated key is ('$.a.b'), or None; `text` is valid JSON."""
    stack = []          # per open container: [set of keys or None, path, last key]
    in_string = False
    escaped = False
    has_escape = False
    chars = []
    pending = None      # the last string closed, until we see what follows it
    pending_escape = False
    index = []          # per open array: how many values started so far
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = has_escape = True
            elif ch == '"':
                in_string = False
                pending = "".join(chars)
                pending_escape = has_escape
                continue
            chars.append(ch)
            continue
        if ch in " \t\r\n":
            continue
        if ch == '"':
            in_string = True
            has_escape = False
            chars = []
            pending = None
            continue
        if ch == ":" and pending is not None and stack and stack[-1][0] is not None:
            key = json.loads('"' + pending + '"') if pending_escape else pending
            keys = stack[-1][0]
            if key in keys:
                return stack[-1][1]
            keys.add(key)
            stack[-1][2] = key
        elif ch in "{[":
            path = _child_path(stack, index)
            stack.append([set() if ch == "{" else None, path, None])
            index.append(0)
        elif ch in "}]":
            stack.pop()
            index.pop()
        elif ch == "," and index:
            index[-1] += 1
        pending = None
    return None


def _child_path(stack, index):
    if not stack:
        return "$"
    parent = stack[-1]
    if parent[0] is None:
        return parent[1] + "[" + str(index[-1]) + "]"
    return parent[1] + "." + _safe_name(parent[2])


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"


def _safe_name(key):
    # Only a key of letters is shown: anything else may be card data.
    if isinstance(key, str) and 1 <= len(key) <= 40 and not key.strip(_LETTERS):
        return key
    return "?"


def _hooks_supported():
    if sys.implementation.name != "cpython":
        return False
    try:
        json.loads("{}", object_pairs_hook=dict)
        return True
    except TypeError:
        return False


# One decoder for every call (json.loads builds one per call when given a hook).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs) if _hooks_supported() else None
