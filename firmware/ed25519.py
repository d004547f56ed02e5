"""Ed25519 signing (RFC 8032 §5.1) in portable Python, for a board's
checkpoints.

Why hand-written: MicroPython 1.29 has no Ed25519 (no cryptography, no
libsodium, no ucryptolib curve ops) and no native sha512 on the terminal's
ports.  This is RFC 8032's reference arithmetic over Python's arbitrary
ints: extended twisted-Edwards coordinates, plain double-and-add (about
255 doublings and 128 additions per scalar multiplication), one field
inversion per point encoding.  Signing is deterministic, so RFC 8032's
test vectors pin it and the host verifier (cryptography) checks it.

Not constant-time: MicroPython's big ints branch on their values.  The
key is the board's own and never leaves it; a terminal whose threat model
includes local timing side channels should sign in a secure element
(docs/DESIGN.md, "Signing on a microcontroller").

`verify(public, message, signature)` checks the backend's signed acks.
`Ed25519Signer(seed)` has the journal's signer interface (.alg, .kid,
.sign(message)): agent/core/journal/ring.py calls it once per commit.
"""

from daozhang.agent.core.journal import checkpoint
from daozhang.firmware.sha512 import sha512

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
D2 = D * 2 % P
BASE = (15112221349535400772501151409588531511454012693041857206046113283949847762202,
        46316835694926478169428394003475163141307993866256225615783033603165251855960)
SEED_SIZE = 32


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * D2 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p1):
    x1, y1, z1, _ = p1
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_mult(k, point=None):
    """k * point (the base point by default), extended coordinates."""
    if point is None:
        point = (BASE[0], BASE[1], 1, BASE[0] * BASE[1] % P)
    acc = (0, 1, 1, 0)
    top = 255                   # MicroPython's int has no bit_length(): find the top bit
    while top >= 0 and not (k >> top) & 1:
        top -= 1
    for i in range(top, -1, -1):
        acc = _double(acc)
        if (k >> i) & 1:
            acc = _add(acc, point)
    return acc


def encode_point(point):
    x, y, z, _ = point
    zinv = pow(z, P - 2, P)
    x, y = x * zinv % P, y * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _int(data):
    return int.from_bytes(data, "little")


def _expand(seed):
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_SIZE:
        raise ValueError("an Ed25519 seed is %d bytes" % SEED_SIZE)
    h = sha512(seed)
    a = _int(h[:32])
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed):
    """The 32-byte public key of a 32-byte seed (RFC 8032 §5.1.5)."""
    return encode_point(scalar_mult(_expand(seed)[0]))


def sign(seed, message, public=None):
    """The 64-byte signature R || S (RFC 8032 §5.1.6)."""
    a, prefix = _expand(seed)
    if public is None:
        public = encode_point(scalar_mult(a))
    r = _int(sha512(prefix + message)) % L
    big_r = encode_point(scalar_mult(r))
    k = _int(sha512(big_r + public + message)) % L
    return big_r + ((r + k * a) % L).to_bytes(32, "little")


SQRT_M1 = pow(2, (P - 1) // 4, P)


def decode_point(data):
    """The point a 32-byte encoding names (RFC 8032 §5.1.3), or None."""
    if len(data) != 32:
        return None
    y = _int(data)
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _same(p1, p2):
    return (p1[0] * p2[2] - p2[0] * p1[2]) % P == 0 and (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def verify(public, message, signature):
    """True when `signature` is `public`'s over `message` (RFC 8032 §5.1.7):
    the board checks the backend's signed receipt and settlement acks."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = decode_point(public)
    r = decode_point(signature[:32])
    s = _int(signature[32:])
    if a is None or r is None or s >= L:
        return False
    k = _int(sha512(signature[:32] + public + message)) % L
    return _same(scalar_mult(s), _add(r, scalar_mult(k, a)))


class Ed25519Signer:
    """The journal's signer on a board: algorithm 1, kid = SPEC 3.6 key id."""

    alg = checkpoint.ALG_ED25519

    def __init__(self, seed):
        self._seed = bytes(seed)
        self.public_bytes = public_key(self._seed)
        self.kid = checkpoint.key_id(self.public_bytes)

    def sign(self, message):
        return sign(self._seed, bytes(message), self.public_bytes)


def load_signer(path):
    """The signer whose 32-byte seed is the file at `path`, or None when the
    board has no key (every commit is then a flagged signer outage, SPEC 3.7)."""
    try:
        with open(path, "rb") as f:
            seed = f.read()
    except OSError:
        return None
    if len(seed) != SEED_SIZE:
        return None
    return Ed25519Signer(seed)
