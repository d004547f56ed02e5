"""The board's Ed25519 (firmware/ed25519.py, firmware/sha512.py) against
RFC 8032 §7.1 and FIPS 180-4 vectors, on both interpreters."""

import binascii

from daozhang.agent.core.journal import checkpoint, ring_storage
from daozhang.firmware import ed25519, sha512

from portable import kit

h = binascii.unhexlify

RFC8032 = (   # (secret, public, message, signature): RFC 8032 §7.1 TEST 1, 2, 3
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
)


def test_sha512_fips_vectors_and_block_edges():
    assert sha512.sha512_portable(b"abc") == h(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    assert sha512.sha512_portable(b"") == h(
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
    two_blocks = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq" \
                 b"klmnopqrlmnopqrsmnopqrstnopqrstu"
    assert sha512.sha512_portable(two_blocks) == h(
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")


def test_rfc8032_vectors():
    for secret, public, message, signature in RFC8032:
        assert ed25519.public_key(h(secret)) == h(public)
        assert ed25519.sign(h(secret), h(message)) == h(signature)


def test_signer_has_the_journal_interface_and_spec_key_id():
    signer = ed25519.Ed25519Signer(h(RFC8032[0][0]))
    assert signer.alg == checkpoint.ALG_ED25519
    assert signer.kid == checkpoint.key_id(h(RFC8032[0][1]))
    assert len(signer.sign(b"checkpoint")) == 64


def test_signed_commit_is_not_an_outage():
    storage = ring_storage.MemoryStorage(kit.fresh_image())
    ring = ring_storage.open_ring(storage)
    signer = ed25519.Ed25519Signer(bytes(range(32)))
    appended = ring_storage.commit(storage, ring, [(1, {"n": 1})], kit.StepClock().now(), signer)[0]
    assert not ring.outage
    assert appended.checkpoint["alg"] == 1 and len(appended.checkpoint["sig"]) == 64


def test_bad_seed_is_refused():
    kit.raises(ValueError, ed25519.public_key, b"short")


def test_verify_accepts_the_vectors_and_refuses_tampering():
    for secret, public, message, signature in RFC8032:
        assert ed25519.verify(h(public), h(message), h(signature))
        bad = bytearray(h(signature))
        bad[5] ^= 1
        assert not ed25519.verify(h(public), h(message), bytes(bad))
        assert not ed25519.verify(h(public), h(message) + b"x", h(signature))
    pub, msg, sig = h(RFC8032[0][1]), b"", h(RFC8032[0][3])
    s_plus_l = (int.from_bytes(sig[32:], "little") + ed25519.L).to_bytes(32, "little")
    assert not ed25519.verify(pub, msg, sig[:32] + s_plus_l)       # S >= L: malleable, refused
    assert not ed25519.verify(pub[:31], msg, sig)
