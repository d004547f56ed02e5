"""What a microcontroller terminal reads at boot, made on the host at flash time.

The board has no TOML parser, no PEM reader and no time zone database, so
`daozhang device flash` turns the board file (boards/<name>.toml, checked by
boards/load.py and boards/mcu.py) and the provisioned directory into:

  /board.json                 pins, UART, display, watchdog, file paths, the
                              backend's key, MQTT settings (firmware/board_config.py
                              reads and checks it on the board)
  <state_dir>/device.seed     the device's Ed25519 key as its 32-byte seed
                              (firmware/ed25519.load_signer), from device.key (PEM)
  <state_dir>/profile.json    the merchant profile, validated, as JSON
  <state_dir>/journal.ack     (written by the board: the newest backend ack)

The time zone becomes a fixed UTC offset taken at flash time (the shipped
profiles are in China Standard Time, which has no daylight saving; a zone
that has it would need a re-flash at each change: README says so).
"""

import datetime
import json
import tomllib
import zoneinfo

from cryptography.hazmat.primitives import serialization

from daozhang.agent.core.errors import LocalError
from daozhang.profile import validate_profile
from daozhang.signing import load_public_key, raw_public

SEED_NAME = "device.seed"
PROFILE_NAME = "profile.json"
ANCHOR_NAME = "journal.ack"


def _toml(state, name, where):
    try:
        return tomllib.loads(state[name].decode("utf-8"))
    except KeyError:
        raise LocalError("%s: %s is missing: provision the device again" % (where, name)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LocalError("%s: %s is not valid TOML: %s" % (where, name, exc)) from None


def device_seed(pem, where):
    try:
        key = serialization.load_pem_private_key(pem, password=None)
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    except (ValueError, TypeError) as exc:
        raise LocalError("%s: the device key is not an unencrypted Ed25519 PEM key: %s" % (where, exc)) from None


def utc_offset_s(zone, at=None):
    at = at or datetime.datetime.now(datetime.timezone.utc)
    return int(at.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset().total_seconds())


def _service(agent, state, where):
    """board.json's `service` (the USB service port, SPEC 8): the board's
    native USB CDC port with the provisioned technicians' keys, or None when
    no technician key was provisioned (nobody could authenticate)."""
    names = agent.get("device", {}).get("technician_pubkeys") or []
    if not names:
        return None
    device = agent.get("service_port", {}).get("device")
    if device != "usb-cdc":
        raise LocalError("%s: agent.toml's [service_port] device is %r; a microcontroller serves its "
                         "journal on \"usb-cdc\"" % (where, device))
    keys = []
    for name in names:
        try:
            keys.append(raw_public(load_public_key(state[name])).hex())
        except KeyError:
            raise LocalError("%s: the technician key %s is missing: provision the device again"
                             % (where, name)) from None
    return {"technician_keys": keys, "port": "usb_cdc"}


def board_json(board, state, where, root="/"):
    """({board path: bytes} to copy, the board.json dict) for a checked board
    dict (with "mcu") and the provisioned dir's {name: bytes}."""
    if board.get("mcu") is None:
        raise LocalError("%s: not a microcontroller board (no [mcu] table)" % board["path"])
    agent = _toml(state, "agent.toml", where)
    device = agent.get("device", {})
    profile = validate_profile(_toml(state, device.get("profile", "merchant.toml"), where),
                               where + "/" + device.get("profile", "merchant.toml"))
    key_name = device.get("key", "device.key")
    if key_name not in state:
        raise LocalError("%s: agent.toml names the key %s, which is missing" % (where, key_name))
    backend_name = device.get("backend_pubkey", "backend.pub")
    try:
        backend_pub = raw_public(load_public_key(state[backend_name]))
    except KeyError:
        raise LocalError("%s: %s (the backend's key) is missing" % (where, backend_name)) from None
    sdir = board["state_dir"].rstrip("/") + "/"
    mcu = board["mcu"]
    mqtt = agent.get("mqtt")
    cfg = {
        "device_id": device.get("id"),
        "journal_file": sdir + board["journal"]["file"],
        "key_file": sdir + SEED_NAME,
        "profile_file": sdir + PROFILE_NAME,
        "anchor_file": sdir + ANCHOR_NAME,
        "utc_offset_s": utc_offset_s(profile["timezone"]),
        "wdt_ms": mcu["wdt_ms"],
        "backend_pub": backend_pub.hex(),
        "led": mcu["led"], "buzzer": mcu["buzzer"], "uart": mcu["uart"], "display": mcu["display"],
        "mqtt": None if not mqtt else {
            "host": mqtt["host"], "port": int(mqtt.get("port", 8883)),
            "keepalive_s": int(mqtt.get("keepalive", 30)),
            "ca_file": sdir + mqtt["ca"], "cert_file": sdir + mqtt["cert"], "key_file": sdir + mqtt["key"]},
    }
    service = _service(agent, state, where)
    if service is not None:
        cfg["service"] = service
    files = {root + "board.json": json.dumps(cfg, sort_keys=True, indent=1).encode(),
             sdir + SEED_NAME: device_seed(state[key_name], where),
             sdir + PROFILE_NAME: json.dumps(profile, sort_keys=True, default=str).encode()}
    return files, cfg
