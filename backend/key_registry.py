"""The Ingestor's view of each device's signing key, following rotations.

Per device it caches the registered public key and a rotation the device
journaled but has not yet vouched for (backend/device_keys.py).  Several
backend workers share the devices table, and a worker restarts with an
empty cache, so the cache is only a hint: `refresh` reloads from the store,
which the Ingestor does once before it calls a checkpoint `wrong_key`.

Loading from the store also finishes a rotation whose vouching checkpoint
is stored already (a worker died between storing the batch and swapping
the key, or another worker stored that checkpoint without knowing of the
rotation): stored checkpoints were verified before they were stored.
"""

from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal.record import TYPE_CHECKPOINT, TYPE_KEY_ROTATION
from daozhang.backend.device_keys import Rotation, rotation_from_payload


class KeyRegistry:
    def __init__(self, store, log):
        self.store = store
        self.log = log
        self._cache = {}     # device -> (public key bytes, pending Rotation or None)

    def current(self, device_id):
        """(public key bytes, pending rotation) or None for an unknown device."""
        state = self._cache.get(device_id)
        if state is None:
            state = self.refresh(device_id)
        return state

    def refresh(self, device_id):
        self._cache.pop(device_id, None)
        row = self.store.device(device_id)
        if row is None:
            return None
        key = bytes(row["public_key"])
        pending = self._stored_rotation(device_id, key)
        if pending is not None and self._vouched_in_store(device_id, pending):
            self.adopt(device_id, key, pending)
            key, pending = pending.pub, None
        state = self._cache[device_id] = (key, pending)
        return state

    def after_batch(self, device_id, keys):
        """Remember where a checked and stored batch left the key (a
        KeyState); persist a rotation it adopted."""
        if keys.adopted is not None:
            old = self._cache.get(device_id, (None,))[0]
            self.adopt(device_id, old, keys.adopted)
        self._cache[device_id] = (keys.public_bytes, keys.pending)

    def adopt(self, device_id, old_public, rotation):
        old_kid = checkpoint.key_id(old_public) if old_public is not None else b""
        swapped = self.store.rotate_device_key(device_id, old_kid, rotation.pub, rotation.kid)
        if swapped:
            self.log("key_rotated", device=device_id, seq=rotation.seq,
                     old_kid=old_kid.hex(), new_kid=rotation.kid.hex())

    def _stored_rotation(self, device_id, key):
        found = self.store.newest_record_of_type(device_id, TYPE_KEY_ROTATION)
        if found is None:
            return None
        rotation = rotation_from_payload(found[0], found[1])
        if not isinstance(rotation, Rotation) or rotation.kid == checkpoint.key_id(key):
            return None   # malformed ones were never stored; or adopted already
        return rotation

    def _vouched_in_store(self, device_id, rotation):
        found = self.store.newest_record_of_type(device_id, TYPE_CHECKPOINT,
                                                 after_seq=rotation.seq, oldest=True)
        if found is None:
            return False
        payload = found[1]
        return isinstance(payload, dict) and isinstance(payload.get("first"), int) \
            and payload["first"] <= rotation.seq and payload.get("alg") == checkpoint.ALG_ED25519
