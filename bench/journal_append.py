"""Journal append, open and verify throughput, each beside its peer in the same run.

Prints one JSON line:
  durable_1_vs_sqlite   durable appends/s at one record per commit / SQLite
                        (WAL, synchronous=FULL) inserting the same records one row per commit
  durable_1_vs_raw      the same / raw pwrite + fdatasync of the same commit bytes
                        into a preallocated file
  group_100_vs_sqlite   8 concurrent writers sharing commits (group commit) /
                        SQLite FULL at 100 rows per commit
  open_64m_vs_1m        recovery-open of a full 64 MiB journal / a full 1 MiB one
                        (same segment size: open work is bounded by a segment)
  verify_records_per_s  host-side verification of an N-record journal, and
  verify_vs_decode      its ratio to a cbor2 decode-only pass over the same records
  bytes_written_per_commit  bytes the journal writes per 1-record commit (storage
                        adapter; *_proc_io: /proc/self/io write_bytes), beside
                        sector_floor_bytes, one sector: the least any device writes
  backend_check_us_per_record  the backend's check (decode, chain, signatures) of
                        --backend-commits one-sale commits, newest signature per run
                        vs _all (every signature); bench/backend_check.py, issue 17

    python bench/journal_append.py [--records-verify 1000000] [--seconds 3] [--dir DIR]

Targets (issue 2): durable_1_vs_sqlite >= 1.6, durable_1_vs_raw >= 0.7,
group_100_vs_sqlite >= 1.0, open_64m_vs_1m <= 1.5, verify_vs_decode >= 0.5.
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

import cbor2

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import JournalFull
from daozhang.agent.core.journal import layout, record, ring_storage
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import generate_keypair, load_signer
from daozhang.agent.storage import FileStorage


# An hour ago in the merchant's zone (+08:00, no DST), not a fixed day that goes stale.
SALE_TIME = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600 - 3600))


def sale(n):
    return {"kind": "sale", "pos_txn_id": "B%09d" % n, "time": SALE_TIME,
            "amount": 1000 + n % 5000, "currency": "CNY", "card": "622202******%04d" % (n % 10000),
            "card_type": "debit", "auth_code": "%06d" % (n % 1000000), "rrn": "%012d" % n,
            "merchant_id": "102310058120001", "terminal_id": "T0000001", "mcc": "5812", "settlement": "T1"}


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


class Contender:
    """One side of a comparison: set up once, stepped in interleaved slices."""

    def __init__(self, name, step, per_step=1, close=None):
        self.name, self.step, self.per_step, self.close = name, step, per_step, close
        self.count = 0
        self.seconds = 0.0

    def run_slice(self, seconds):
        start = time.perf_counter()
        n = 0
        while True:
            self.step(self.count + n)
            n += 1
            if time.perf_counter() - start >= seconds:
                break
        self.seconds += time.perf_counter() - start
        self.count += n

    @property
    def per_s(self):
        return rate(self.count * self.per_step, self.seconds)


def interleave(contenders, seconds, rounds=10):
    """Run every contender in turns, so each sees the same disk weather.

    The virtual disk here swings by 3x within seconds; slices of the
    contenders alternate so a ratio compares like with like.
    """
    os.sync()
    for _ in range(rounds):
        for c in contenders:
            c.run_slice(seconds / rounds)
    for c in contenders:
        if c.close:
            c.close()
    return [c.per_s for c in contenders]


def journal_contender(workdir, name, signer, batch=1):
    path = os.path.join(workdir, name + ".journal")
    create_journal(path, "bench-pos", size=512 << 20)
    journal = JournalFile.open(path, signer)

    def step(i):
        if batch == 1:
            journal.append(record.TYPE_TRANSACTION, sale(i))
        else:
            journal.append_many([(record.TYPE_TRANSACTION, sale(i * batch + k)) for k in range(batch)])

    def close():
        journal.close()
        os.unlink(path)

    return Contender(name, step, batch, close), journal


def raw_contender(workdir, blob):
    path = os.path.join(workdir, "raw.bin")
    size = 256 << 20
    with open(path, "wb") as f:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDWR)
    pos = [0]
    latencies = []

    def step(i):
        t = time.perf_counter()
        os.pwrite(fd, blob, pos[0])
        os.fdatasync(fd)
        latencies.append(time.perf_counter() - t)
        pos[0] = (pos[0] + len(blob)) % (size - len(blob))

    def close():
        os.close(fd)
        os.unlink(path)

    return Contender("raw", step, 1, close), latencies


def sqlite_contender(workdir, rows_per_commit):
    db, path = sqlite_db(workdir, "bench%d.sqlite" % rows_per_commit)
    bodies = [cbor.dumps(sale(i)) for i in range(1000)]
    seq = [0]

    def step(i):
        db.execute("BEGIN")
        for _ in range(rows_per_commit):
            db.execute("INSERT INTO records VALUES (?, ?)", (seq[0], bodies[seq[0] % 1000]))
            seq[0] += 1
        db.execute("COMMIT")

    def close():
        db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)

    return Contender("sqlite%d" % rows_per_commit, step, rows_per_commit, close)


def commit_bytes(journal):
    """The bytes of one single-record commit (a sale and its checkpoint)."""
    frames = [bytes(f) for _, f in journal.records(from_seq=journal.ring.next_seq - 2, with_frames=True)]
    return b"".join(frames)


def sqlite_db(workdir, name):
    path = os.path.join(workdir, name)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    return db, path


class GroupContender(Contender):
    """8 threads appending one record each per call, sharing commits."""

    def __init__(self, workdir, signer, writers=8):
        Contender.__init__(self, "group", None, 1, self._close)
        self.path = os.path.join(workdir, "group.journal")
        create_journal(self.path, "bench-pos", size=512 << 20)
        self.journal = JournalFile.open(self.path, signer)
        self.writers = writers
        self.serial = 0

    def run_slice(self, seconds):
        stop = threading.Event()
        counts = [0] * self.writers
        base = self.serial

        def worker(w):
            n = 0
            while not stop.is_set():
                self.journal.append(record.TYPE_TRANSACTION, sale(base + w * 1_000_000 + n))
                n += 1
            counts[w] = n

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(self.writers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join()
        self.seconds += time.perf_counter() - start
        self.count += sum(counts)
        self.serial += 10_000_000

    def _close(self):
        self.records_per_commit = self.count / max(self.journal.commits, 1)
        self.journal.close()
        os.unlink(self.path)


def fill_journal(path, size, segment_size, signer):
    create_journal(path, "bench-pos", size=size, segment_size=segment_size)
    n = 0
    with JournalFile.open(path, signer) as journal:
        try:
            while True:
                journal.append_many([(record.TYPE_TRANSACTION, sale(n + i)) for i in range(100)])
                n += 100
        except JournalFull:
            pass
    return n


def bench_open(workdir, signer, segment_size, samples=15):
    """Recovery-open of full journals of two sizes, alternated, best of N each.

    Best-of rather than median: open is CPU and page-cache work, and the
    minimum is the figure least disturbed by the machine's other load.
    """
    paths = {}
    for label, size in (("1m", 1 << 20), ("64m", 64 << 20)):
        paths[label] = os.path.join(workdir, "open%s.journal" % label)
        fill_journal(paths[label], size, segment_size, signer)
    times = {"1m": [], "64m": []}
    for _ in range(samples):
        for label, path in paths.items():
            storage = FileStorage(path, readonly=True)
            start = time.perf_counter()
            ring_storage.open_ring(storage)
            times[label].append(time.perf_counter() - start)
            storage.close()
    for path in paths.values():
        os.unlink(path)
    best = {label: min(values) for label, values in times.items()}
    return best["64m"] / best["1m"], best


def build_big_journal(path, count, signer):
    """A journal of `count` records (plus checkpoints), written in batches."""
    per_record = 330            # a sale's frame, plus its share of checkpoints
    size = max(8 << 20, int(count * per_record * 1.3))
    create_journal(path, "bench-pos", size=size, segment_size=1 << 20)
    n = 0
    with JournalFile.open(path, signer) as journal:
        while n < count:
            batch = min(250, count - n)
            journal.append_many([(record.TYPE_TRANSACTION, sale(n + i)) for i in range(batch)])
            n += batch


def decode_only(path):
    """cbor2 decode of every record body in the file: the floor a verifier cannot beat."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    geo = layout.decode_superblock(data[:layout.SUPERBLOCK_SIZE])
    count = 0
    start = time.perf_counter()
    for index in range(geo.segment_count):
        off = geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
        end = geo.segment_offset(index) + geo.segment_size
        while off + 8 <= end and data[off:off + 2] == record.MAGIC:
            (length,) = struct.unpack_from(">I", data, off + 4)
            cbor2.loads(data[off + 8:off + 8 + length])
            count += 1
            off += length + 12
    return count, time.perf_counter() - start


def bench_verify(workdir, signer, pub_path, count):
    from daozhang.host_tools.verify.journal import verify_journal
    path = os.path.join(workdir, "verify.journal")
    build_big_journal(path, count, signer)
    records, decode_s = decode_only(path)
    start = time.perf_counter()
    report = verify_journal(path, [pub_path])
    verify_s = time.perf_counter() - start
    os.unlink(path)
    return rate(records, verify_s), rate(records, decode_s), report.ok, records


class _CountingStorage(FileStorage):
    """The file adapter, counting the bytes the journal hands to pwrite."""

    def __init__(self, path):
        super().__init__(path)
        self.written = 0

    def pwrite(self, offset, data):
        self.written += len(data)
        super().pwrite(offset, data)


def _proc_write_bytes():
    """Bytes this process caused to be sent to the storage layer (Linux /proc/self/io), or None."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_bytes_per_commit(workdir, signer, sector_size, commits=200):
    """(adapter bytes, /proc/self/io bytes or None) per 1-record commit, segment switches included."""
    path = os.path.join(workdir, "bytes-%d.dzj" % sector_size)
    create_journal(path, "bench-pos", size=4096 + 64 * 65536, segment_size=65536, sector_size=sector_size)
    storage = _CountingStorage(path)
    with JournalFile.open(path, signer, storage=storage) as journal:
        storage.written = 0
        before = _proc_write_bytes()
        for i in range(commits):
            journal.append(record.TYPE_TRANSACTION, sale(i))
        after = _proc_write_bytes()
        adapter = storage.written / commits
    os.unlink(path)
    return adapter, None if before is None or after is None else (after - before) / commits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    parser.add_argument("--records-verify", type=int, default=1_000_000)
    parser.add_argument("--segment-size", type=int, default=64 * 1024, help="for the open benchmark")
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir on /tmp's disk)")
    parser.add_argument("--backend-commits", type=int, default=100_000,
                        help="one-sale commits for backend_check_us_per_record (0: skip)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="dz-bench-", dir=args.dir)
    generate_keypair(os.path.join(workdir, "dev"))
    signer = load_signer(os.path.join(workdir, "dev.key"))

    durable, journal = journal_contender(workdir, "durable1", signer)
    durable.run_slice(0.2)                      # warm up, and get the bytes of one commit
    raw, latencies = raw_contender(workdir, commit_bytes(journal))
    durable.count = durable.seconds = 0
    durable_1, raw_1, sqlite_1 = interleave([durable, raw, sqlite_contender(workdir, 1)], args.seconds * 3)
    group = GroupContender(workdir, signer)
    batch, _ = journal_contender(workdir, "batch100", signer, batch=100)
    group_8, batch_100, sqlite_100 = interleave([group, batch, sqlite_contender(workdir, 100)], args.seconds * 3)
    raw_fdatasync_s = statistics.median(latencies)
    per_commit = group.records_per_commit
    open_ratio, open_times = bench_open(workdir, signer, args.segment_size)
    adapter_512, proc_512 = bench_bytes_per_commit(workdir, signer, 512)
    adapter_4k, proc_4k = bench_bytes_per_commit(workdir, signer, 4096)
    result = {
        "bench": "journal_append",
        "durable_1_per_s": round(durable_1),
        "sqlite_full_1_per_s": round(sqlite_1),
        "durable_1_vs_sqlite": round(durable_1 / sqlite_1, 3),
        "raw_fdatasync_1_per_s": round(raw_1),
        "raw_fdatasync_median_us": round(raw_fdatasync_s * 1e6, 1),
        "durable_1_vs_raw": round(durable_1 / raw_1, 3),
        "group_8_writers_per_s": round(group_8),
        "group_records_per_commit": round(per_commit, 1),
        "sqlite_full_100_per_s": round(sqlite_100),
        "batch_100_per_s": round(batch_100),
        "group_8_vs_sqlite_100": round(group_8 / sqlite_100, 3),
        "group_100_vs_sqlite": round(batch_100 / sqlite_100, 3),
        "open_1m_ms": round(open_times["1m"] * 1000, 2),
        "open_64m_ms": round(open_times["64m"] * 1000, 2),
        "open_segment_size": args.segment_size,
        "open_64m_vs_1m": round(open_ratio, 3),
        # 1-record commits, sector 512 (SPEC 3.9 rule 0): adapter bytes, and what the kernel sent to the device
        "bytes_written_per_commit": round(adapter_512),
        "bytes_written_per_commit_proc_io": None if proc_512 is None else round(proc_512),
        "sector_floor_bytes": 512,
        "bytes_written_per_commit_vs_floor": round(adapter_512 / 512, 3),
        "bytes_written_per_commit_4k": round(adapter_4k),
        "bytes_written_per_commit_4k_proc_io": None if proc_4k is None else round(proc_4k),
        "sector_floor_bytes_4k": 4096,
    }
    try:
        verify_rate, decode_rate, ok, records = bench_verify(workdir, signer, os.path.join(workdir, "dev.pub"),
                                                             args.records_verify)
        result.update({"verify_records": records, "verify_records_per_s": round(verify_rate),
                       "decode_records_per_s": round(decode_rate),
                       "verify_vs_decode": round(verify_rate / decode_rate, 3), "verify_ok": ok})
    except ImportError as exc:
        result["verify_error"] = str(exc)
    if args.backend_commits:        # the backend's check of one-sale commits (bench/backend_check.py)
        from backend_check import check_figures
        result.update(check_figures(args.backend_commits))
    for name in os.listdir(workdir):
        os.unlink(os.path.join(workdir, name))
    os.rmdir(workdir)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
