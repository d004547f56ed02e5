"""Image flash write rate beside `dd bs=4M conv=fsync` of the same image, and
the bytes a block map saves.  Prints one JSON line:

  write_mib_s             host_tools.flash.writer.write_image of a raw image to a file
                          target (4 MiB writes, fsync; the hashing it does for the
                          read-back included; the read-back itself is not a write)
  dd_mib_s                dd if=IMAGE of=TARGET bs=4M conv=fsync, same image, same disk
  write_vs_dd             their ratio (target >= 0.9)
  verify_mib_s            the read-back that follows (page cache dropped, card compared
                          with the image); write_and_verify_vs_dd: both phases vs dd alone
  bmap_bytes, full_bytes  bytes written with the image's block map vs without
  bmap_fraction           bmap_bytes / full_bytes

The image is a Pi-style image (sfdisk, mkfs.fat, mkfs.ext4 with files) of
--size-mib MiB whose root file system holds --data-mib MiB of random data,
the rest unmapped, as a real OS image is (1 GiB of data in a 4 GiB image
writes 1 GiB).  Contenders run in interleaved rounds; the median counts.
Before each run the page cache of the source is dropped, and the target is
a new file (no overwrite advantage either way).

    python bench/flash.py [--size-mib 1024] [--data-mib 256] [--rounds 3] [--dir DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from dztest.pi_image import build_pi_image  # noqa: E402

from daozhang.host_tools.flash import writer  # noqa: E402
from daozhang.host_tools.flash.bmap import load_bmap  # noqa: E402
from daozhang.host_tools.flash.source import ImageSource  # noqa: E402


def drop(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_ours(image, target, block_map=None, verify=None):
    drop(image)
    start = time.monotonic()
    with ImageSource(image) as src:
        result = writer.write_image(src, target, block_map)
    seconds = time.monotonic() - start
    if verify is not None:
        start = time.monotonic()
        writer.verify_target(target, result)
        verify.append(time.monotonic() - start)
    return seconds, result.written


def run_dd(image, target):
    drop(image)
    start = time.monotonic()
    subprocess.run(["dd", "if=" + image, "of=" + target, "bs=4M", "conv=fsync", "status=none"], check=True)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--data-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dz-bench-flash-", dir=args.dir)
    try:
        image = os.path.join(work, "raspios.img")
        boot_mib = 256
        build_pi_image(image, boot_mib=boot_mib, root_mib=args.size_mib - boot_mib - 1,
                       fill_root_mib=args.data_mib)
        bmap_path = image + ".bmap"
        subprocess.run(["bmaptool", "create", image, "-o", bmap_path], check=True, capture_output=True)
        block_map = load_bmap(bmap_path)
        ours, dd, verify = [], [], []
        size = os.path.getsize(image)
        for i in range(args.rounds):
            for name in (("ours", "dd") if i % 2 == 0 else ("dd", "ours")):
                target = os.path.join(work, "card-%s.img" % name)
                if name == "ours":
                    seconds, written = run_ours(image, target, verify=verify)
                    ours.append(seconds)
                else:
                    dd.append(run_dd(image, target))
                os.unlink(target)
        _, mapped = run_ours(image, os.path.join(work, "card-bmap.img"), block_map)
        mib = size / (1 << 20)
        result = {
            "image_mib": round(mib, 1),
            "write_mib_s": round(mib / statistics.median(ours), 1),
            "dd_mib_s": round(mib / statistics.median(dd), 1),
            "write_vs_dd": round(statistics.median(dd) / statistics.median(ours), 3),
            "verify_mib_s": round(mib / statistics.median(verify), 1),
            "write_and_verify_vs_dd": round(statistics.median(dd) / (statistics.median(ours)
                                                                     + statistics.median(verify)), 3),
            "bmap_bytes": mapped, "full_bytes": size,
            "bmap_fraction": round(mapped / size, 3),
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
