"""Verify a receipt code offline with the device's public key (SPEC 5.5).

The portable core (agent/core/intake/receipt.py) decodes the code and rebuilds the
signed checkpoint message from the record hash and its audit path; this
CPython side checks the Ed25519 signature.  `verify_report` returns a report
(ok, problem, the receipt's fields); `verify_code` raises on the first
problem, as SPEC habit 8 asks.
"""

from daozhang.agent.core.errors import DaozhangError
from daozhang.agent.core.intake import receipt as core
from daozhang.agent.core.journal.checkpoint import ALG_ED25519, key_id
from daozhang.signing import ed25519_verify, load_public_key, raw_public


class ReceiptWrongKey(core.ReceiptInvalid):
    """The receipt names a key id other than the one given."""


class ReceiptBadSignature(core.ReceiptInvalid):
    """The checkpoint signature does not verify: forged or altered."""


def verify_code(code, public_key):
    """Check `code` against `public_key` (PEM path, PEM bytes or 32 raw bytes).

    Returns the decoded receipt dict; raises DecodeError (malformed) or a
    ReceiptInvalid subclass (it does not prove what it claims).
    """
    rc = core.decode(code)
    message = core.check(rc)
    key = load_public_key(public_key)
    if rc["alg"] != ALG_ED25519:
        raise core.ReceiptInvalid("checkpoint algorithm %d, this verifier knows 1 (Ed25519)" % rc["alg"])
    kid = key_id(raw_public(key))
    if rc["kid"] != kid:
        raise ReceiptWrongKey("receipt signed by key %s, the given key is %s"
                              % (rc["kid"].hex(), kid.hex()))
    if not ed25519_verify(key, message, rc["sig"]):
        raise ReceiptBadSignature("checkpoint %d signature does not verify: the receipt was "
                                  "altered or forged" % rc["cp_seq"])
    return rc


def describe(rc):
    """JSON-able view of a decoded receipt."""
    return {"dev": rc["dev"], "seq": rc["seq"], "hash": rc["hash"].hex(),
            "checkpoint_seq": rc["cp_seq"], "checkpoint_wall_ms": rc["wall_ms"],
            "kid": rc["kid"].hex(), "batch_records": rc["cp_seq"] - rc["first"]}


def verify_report(code, public_key):
    try:
        rc = verify_code(code, public_key)
    except DaozhangError as exc:
        return {"ok": False, "problem": type(exc).__name__, "message": str(exc)}
    out = describe(rc)
    out["ok"] = True
    return out
