"""Put micropython-lib's umqtt.simple where the MicroPython tests load it.

    python tests/mp/fetch_mplib.py     # -> tests/mp/mplib/umqtt/simple.py (git-ignored)

The firmware freezes umqtt from micropython-lib (firmware/manifest.py:
require("umqtt.simple")); the WebAssembly-port tests need the same module
on the port's filesystem.  It is published on PyPI as an upip-style sdist
(no setup.py, so pip cannot install it): this fetches that one pinned file,
checks its SHA-256 and takes umqtt/simple.py out of it, as upip would.
Idempotent: a present, matching copy is kept.
"""

import hashlib
import io
import os
import sys
import tarfile
import urllib.request

URL = ("https://files.pythonhosted.org/packages/bd/cf/697e3418b2f44222b3e848078b1e33ee76aedca9b6c2430ca1b1aec1ce1d/"
       "micropython-umqtt.simple-1.3.4.tar.gz")
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = "micropython-umqtt.simple-1.3.4/umqtt/simple.py"
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "mplib", "umqtt", "simple.py")


def fetch(target=TARGET):
    if os.path.exists(target):
        return target
    with urllib.request.urlopen(URL, timeout=60) as response:
        blob = response.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise SystemExit("fetch_mplib: %s has SHA-256 %s, expected %s: not installing it" % (URL, digest, SHA256))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        source = tar.extractfile(MEMBER).read()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    open(os.path.join(os.path.dirname(target), "__init__.py"), "w").close()
    with open(target + ".tmp", "wb") as f:
        f.write(source)
    os.replace(target + ".tmp", target)
    return target


if __name__ == "__main__":
    print("fetch_mplib: %s" % fetch())
    sys.exit(0)
