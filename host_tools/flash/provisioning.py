"""What a provisioned directory (`daozhang device provision --out DIR`) says,
without its secrets: device id, board, key fingerprint, broker.

Used on the way in (the flash checks DIR before touching the card) and on
the way out (`--check` reads the same files back from the card).
"""

import os
import tomllib

from daozhang.signing import fingerprint, load_public_key, raw_public
from daozhang.host_tools.flash.errors import ImageError
from daozhang.agent.core.errors import LocalError

SECRET_SUFFIXES = (".key",)


def summary_from_bytes(agent_toml, pub_pem, where):
    """{"device_id", "board", "fingerprint", "broker"} from agent.toml and the device's .pub."""
    try:
        cfg = tomllib.loads(agent_toml.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ImageError("%s: agent.toml is not valid TOML: %s" % (where, exc)) from None
    device = cfg.get("device", {})
    mqtt = cfg.get("mqtt")
    fp = None
    if pub_pem is not None:
        try:
            fp = fingerprint(raw_public(load_public_key(pub_pem)))
        except LocalError as exc:
            raise ImageError("%s: the device's public key: %s" % (where, exc)) from None
    return {"device_id": device.get("id"), "board": device.get("board"),
            "fingerprint": fp, "key_file": device.get("key"),
            "broker": None if not mqtt else "%s:%s" % (mqtt.get("host"), mqtt.get("port", 8883))}


def read_provision_dir(path):
    """(summary, {name: bytes}) of DIR; LocalError if it is not a provisioned device."""
    config = os.path.join(path, "agent.toml")
    if not os.path.isfile(config):
        raise LocalError("--provision %s: no agent.toml: make it with `daozhang device provision "
                         "--out %s`" % (path, path))
    files = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as f:
                files[name] = f.read()
    summary = summary_from_bytes(files["agent.toml"], None, path)
    key = summary["key_file"] or "device.key"
    if key not in files:
        raise LocalError("--provision %s: agent.toml names the key %s, which is missing" % (path, key))
    pub = key[:-4] + ".pub" if key.endswith(".key") else None
    if pub in files:
        summary = summary_from_bytes(files["agent.toml"], files[pub], path)
    return summary, files
