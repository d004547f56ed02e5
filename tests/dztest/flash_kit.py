"""Shared pieces of the flash tests: a provisioned device dir and a wheelhouse.

The wheelhouse holds a stand-in `daozhang` wheel made here with zipfile (a
wheel is a zip with METADATA, WHEEL, RECORD and entry_points.txt): the real
one would need its dependencies' wheels, i.e. a download, and the test is
about the offline install path, not about cryptography's wheel.
"""

import base64
import hashlib
import os
import zipfile

from click.testing import CliRunner

from dztest.agent_daemon import PROFILE

STUB = b'def main():\n    print("daozhang stub agent")\n'


def provision_dir(tmp, device_id="pos-0042", board="rpi4", journal_size="1MiB", segment_size="64KiB",
                  technician_pubkeys=()):
    from daozhang.signing import generate_keypair
    from daozhang.cli.main import cli
    tmp = str(tmp)
    backend = os.path.join(tmp, "backend")
    generate_keypair(backend)
    out = os.path.join(tmp, "prov-" + device_id)
    result = CliRunner().invoke(cli, [
        "device", "provision", "--board", board, "--device-id", device_id, "--profile", PROFILE,
        "--backend-pubkey", backend + ".pub", "--out", out, "--journal-size", journal_size,
        "--segment-size", segment_size, "--json"]
        + [arg for path in technician_pubkeys for arg in ("--technician-pubkey", path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def make_wheelhouse(tmp, version="0.1.0"):
    wheels = os.path.join(str(tmp), "wheels")
    os.makedirs(wheels, exist_ok=True)
    dist = "daozhang-%s.dist-info" % version
    files = {
        "daozhang_stub.py": STUB,
        dist + "/METADATA": ("Metadata-Version: 2.1\nName: daozhang\nVersion: %s\n" % version).encode(),
        dist + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        dist + "/entry_points.txt": b"[console_scripts]\ndaozhang = daozhang_stub:main\n",
    }
    record = [_record_line(n, d) for n, d in files.items()] + [dist + "/RECORD,,"]
    files[dist + "/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(wheels, "daozhang-%s-py3-none-any.whl" % version), "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return wheels
