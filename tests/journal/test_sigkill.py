"""SIGKILL loop on a real writer process (issue 2).

Invariant: after any SIGKILL, every sequence the child printed as committed
is in the file with the printed hash, the next open succeeds, and the final
journal verifies.  Kills land after a random number of promised records,
i.e. mid-write, mid-fsync or between commits: the parent synchronises on
the child's output, never on sleeps.
"""

import os
import random
import signal
import subprocess
import sys

from daozhang.agent.core.journal import ring_storage
from daozhang.agent.journal_file import create_journal
from daozhang.signing import generate_keypair
from daozhang.host_tools.verify.journal import verify_journal     # no fallback: a broken verifier fails the test
from dztest.journal_kit import read_all

CHILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dztest", "journal_child.py")
KILLS = int(os.environ.get("DZ_SIGKILL_LOOPS", "200"))


def committed_on_disk(path):
    with open(path, "rb") as f:
        storage = ring_storage.MemoryStorage(f.read())
    ring = ring_storage.open_ring(storage)      # recovery on a copy: the file is untouched
    return dict(read_all(storage, ring)), ring


def test_sigkill_loop(tmp_path):
    path = str(tmp_path / "journal")
    generate_keypair(str(tmp_path / "dev"))
    create_journal(path, "kill-pos", size=1 << 20, segment_size=65536)
    rng = random.Random(20261126)
    promised = {}
    opens = 0
    for kill in range(KILLS):
        child = subprocess.Popen([sys.executable, CHILD, path, str(tmp_path / "dev.key")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = child.stdout.readline()
        assert first.startswith("open "), "open failed after kill %d: %s" % (kill, child.stderr.read())
        opens += 1
        wanted = rng.randrange(0, 60)
        for _ in range(wanted):
            line = child.stdout.readline()
            if not line:
                break
            seq, digest = line.split()
            promised[int(seq)] = digest
        child.send_signal(signal.SIGKILL)
        # Lines already written before the kill are promises too.
        rest, _ = child.communicate()
        for line in rest.splitlines():
            seq, digest = line.split()
            promised[int(seq)] = digest
        assert child.returncode == -signal.SIGKILL
        found, ring = committed_on_disk(path)
        oldest = min(s for s in ring.first_seqs if s is not None)
        for seq, digest in promised.items():
            if seq >= oldest:
                assert seq in found, "kill %d: committed record %d lost" % (kill, seq)
                assert found[seq].hex() == digest
    assert opens == KILLS
    assert len(promised) > KILLS
    report = verify_journal(path, [str(tmp_path / "dev.pub")], all_signatures=True)
    assert report.ok, [str(f) for f in report.findings]
