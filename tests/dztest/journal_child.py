"""A writer process for the SIGKILL loop: opens the journal, appends forever.

Prints `SEQ HASH` after each append returns (committed), flushing stdout,
so the parent knows exactly what it was promised.  Every 40th commit moves
the cursors to the head, as a backend ack would, so the ring keeps wrapping.
"""

import sys

from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile
from daozhang.signing import load_signer


def main(path, key_path):
    journal = JournalFile.open(path, load_signer(key_path))
    print("open %d" % journal.ring.next_seq, flush=True)
    n = 0
    while True:
        n += 1
        if n % 40 == 0:
            head = journal.ring.next_seq
            results = journal.set_cursors(acked=head, released=head,
                                          entries=[(record.TYPE_SYNC_ACK, {"ack": b"test"})])
        else:
            results = journal.append_many([(record.TYPE_TRANSACTION, {"n": n, "memo": "z" * (n % 200)})])
        for r in results:
            sys.stdout.write("%d %s\n" % (r.seq, r.hash.hex()))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
