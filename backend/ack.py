"""The backend's signed acknowledgements (SPEC 6.4).

An ack says "I durably hold all your records with seq < to, and record
to-1 has hash head"; the device moves its `acked` cursor only on one that
verifies with the backend key from its config.  The signed bytes are
agent/core/sync_messages.receipts_ack_message, shared with the verifier so
the two cannot drift.
"""

import time

from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.signing import load_signer


class AckSigner:
    def __init__(self, signer):
        self.signer = signer
        self.public_bytes = signer.public_bytes
        self.kid = checkpoint.key_id(signer.public_bytes)

    @classmethod
    def from_file(cls, path):
        return cls(load_signer(path))

    def receipts_ack(self, dev, to, head, at=None):
        """The CBOR payload for daozhang/v1/<dev>/acks."""
        at = int(time.time() * 1000) if at is None else at
        sig = self.signer.sign(msgs.receipts_ack_message(dev, to, head, at, self.kid))
        return msgs.encode_receipts_ack(dev, to, head, at, self.kid, sig)
