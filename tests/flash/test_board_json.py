"""The microcontroller board file and what flashing makes of it: the pins
come from boards/<name>.toml (checked, errors name the key), and
/board.json, the seed and the profile JSON carry exactly what the
provisioned directory says (host_tools/flash/board_json.py)."""

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.boards.load import BoardError, load_board
from daozhang.firmware import board_config
from daozhang.host_tools.flash import board_json
from daozhang.host_tools.flash.provisioning import read_provision_dir
from dztest.flash_kit import provision_dir

ESP = os.path.join(os.path.dirname(__file__), "..", "..", "boards", "esp32s3.toml")


def _board_with(tmp_path, old, new):
    with open(ESP) as f:
        text = f.read()
    assert old in text
    path = tmp_path / "board.toml"
    path.write_text(text.replace(old, new))
    return str(path)


@pytest.mark.parametrize("old,new,key,words", [
    ("line = 48", "line = 60", "outputs.led.line", "pin 60 is not a GPIO of this chip (0..48)"),
    ("tx = 17", "tx = 47", "mcu.uart.tx", "pin 47 is already outputs.buzzer.line"),
    ("baud = 115200 }", "baud = 1234 }", "mcu.uart.baud", "expected one of"),
    ('kind = "ssd1306"', 'kind = "lcd"', "mcu.display.kind", "expected one of none, console, ssd1306"),
    ('chip = "gpio"\nline = 48', 'chip = "/dev/gpiochip0"\nline = 48', "outputs.led.chip", 'expected "gpio"'),
    ("gpio_count = 49", "gpio_count = 49\nspeed = 2", "mcu.speed", "unknown key"),
])
def test_board_file_errors_name_the_key(tmp_path, old, new, key, words):
    with pytest.raises(BoardError) as info:
        load_board(_board_with(tmp_path, old, new))
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_a_linux_board_may_not_carry_mcu(tmp_path):
    rpi = os.path.join(os.path.dirname(ESP), "rpi4.toml")
    path = tmp_path / "rpi.toml"
    path.write_text(open(rpi).read() + "\n[mcu]\ngpio_count = 4\n")
    with pytest.raises(BoardError) as info:
        load_board(str(path))
    assert info.value.key == "mcu"


def test_board_json_carries_pins_key_profile_and_backend(tmp_path):
    prov = provision_dir(tmp_path, device_id="mcu-0009", board="esp32s3")
    summary, state = read_provision_dir(prov)
    files, cfg = board_json.board_json(load_board("esp32s3"), state, prov)
    assert board_config.check(json.loads(files["/board.json"])) == cfg
    assert cfg["led"] == {"pin": 48, "active_low": False} and cfg["buzzer"]["pin"] == 47
    assert cfg["display"]["sda"] == 8 and cfg["uart"]["rx"] == 18 and cfg["utc_offset_s"] == 28800
    assert cfg["journal_file"] == "/state/journal.dzj" and cfg["mqtt"] is None
    seed = files["/state/device.seed"]
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    from daozhang.signing import fingerprint
    from cryptography.hazmat.primitives import serialization
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert fingerprint(raw) == summary["fingerprint"]
    profile = json.loads(files["/state/profile.json"])
    assert profile["merchant_id"] == "102290058120001" and profile["settlement"]["cutoff_minutes"] == 1380


def test_board_json_carries_the_technicians_keys_for_the_usb_service_port(tmp_path):
    from daozhang.signing import generate_keypair, load_public_key, raw_public
    tech = str(tmp_path / "tech")
    generate_keypair(tech)
    prov = provision_dir(tmp_path, device_id="mcu-0010", board="esp32s3", technician_pubkeys=[tech + ".pub"])
    summary, state = read_provision_dir(prov)
    files, cfg = board_json.board_json(load_board("esp32s3"), state, prov)
    assert board_config.check(json.loads(files["/board.json"])) == cfg
    with open(tech + ".pub", "rb") as f:
        assert cfg["service"] == {"technician_keys": [raw_public(load_public_key(f.read())).hex()],
                                  "port": "usb_cdc"}


def test_board_json_without_technicians_has_no_service_port(tmp_path):
    prov = provision_dir(tmp_path, device_id="mcu-0011", board="esp32s3")
    summary, state = read_provision_dir(prov)
    files, cfg = board_json.board_json(load_board("esp32s3"), state, prov)
    assert "service" not in cfg
