"""Journal files from outside (issue 12): bounded by the file, never by what it claims.

Invariant: `journal show`, `verify` and `export` on random bytes, an empty
file, 4 GiB of zeros, a geometry larger than the file, and a header claiming
4 TiB over a sparse file answer in one line (no traceback) within seconds;
verifying an empty 4 GiB journal stays within memory bounded by a segment.
Real processes, sparse files on the real filesystem.
"""

import binascii
import os
import struct
import subprocess
import sys

import pytest

from dztest import journal_forge as forge


def superblock(segment_size, segment_count):
    sb = (b"DZJRNL01" + struct.pack(">HHII", 2, 512, segment_size, segment_count) + bytes(range(16))
          + bytes([3]) + b"pos" + bytes(61) + struct.pack(">Q", 0))
    sb += struct.pack(">I", binascii.crc32(sb) & 0xFFFFFFFF)
    return sb + bytes(4096 - len(sb))


def sparse(path, head, size):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return str(path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    files = {
        "random": sparse(d / "random.dzj", os.urandom(10000), 10000),
        "empty": sparse(d / "empty.dzj", b"", 0),
        "zeros-4GiB": sparse(d / "zeros.dzj", b"", 4 << 30),
        "geometry-past-the-file": sparse(d / "short.dzj", superblock(64 << 20, 65536), 4096 + 8192),
        "4TiB-claim": sparse(d / "huge.dzj", superblock(64 << 20, 65536), 4096 + (64 << 20) * 65536 - 1),
    }
    pub = d / "dev.pub"
    pub.write_bytes(forge.pem_public(forge.new_key()))
    return files, str(pub)


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "daozhang", "journal"] + list(args), capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("name", ["random", "empty", "zeros-4GiB", "geometry-past-the-file", "4TiB-claim"])
@pytest.mark.parametrize("command", ["show", "export"])
def test_show_and_export_refuse_in_one_line(hostile, name, command):
    files, _ = hostile
    rc, out, err = run(command, files[name])
    assert rc == 1 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("daozhang: ")
    assert ("BadSuperblock" in err) != ("TruncatedJournal" in err)


@pytest.mark.parametrize("name", ["random", "empty", "zeros-4GiB", "geometry-past-the-file", "4TiB-claim"])
def test_verify_reports_the_header_as_a_finding(hostile, name):
    files, pub = hostile
    rc, out, err = run("verify", files[name], "--pubkey", pub)
    assert rc == 1 and "Traceback" not in err
    assert "BadSuperblock" in out + err or "TruncatedJournal" in out + err


def test_an_empty_4gib_journal_verifies_in_memory_bounded_by_a_segment(tmp_path):
    path = sparse(tmp_path / "empty4g.dzj", superblock(1 << 20, 4095), 4096 + 4095 * (1 << 20))
    key = forge.new_key()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child of
    # a pytest process grown to 600 MB by earlier tests would report the parent's peak.
    script = ("import sys\n"
              "from daozhang.host_tools.verify.journal import verify_journal\n"
              "report = verify_journal(sys.argv[1], [bytes.fromhex(sys.argv[2])])\n"
              "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
              "print(report.ok, hwm[0])\n")
    proc = subprocess.run([sys.executable, "-c", script, path, forge.raw_public(key).hex()], capture_output=True,
                          text=True, timeout=120)
    ok, peak_kib = proc.stdout.split()
    assert ok == "True", proc.stderr
    assert int(peak_kib) < 200 * 1024, "verify of an empty 4 GiB journal peaked at %s KiB" % peak_kib


@pytest.mark.parametrize("name", ["random", "empty", "zeros-4GiB", "geometry-past-the-file", "4TiB-claim"])
def test_device_pull_image_refuses_in_one_line(hostile, name, tmp_path):
    files, _ = hostile
    proc = subprocess.run([sys.executable, "-m", "daozhang", "device", "pull", "--image", files[name],
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("daozhang: ")
