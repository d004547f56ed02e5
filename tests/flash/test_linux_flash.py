"""Flash a synthetic Raspberry Pi OS image (sfdisk, mkfs.fat, mkfs.ext4) into
file targets with the library, read it back, check provisioning with two FAT
readers (pyfatfs and mtools), run the first-boot step in a scratch root."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from dztest.flash_kit import make_wheelhouse, provision_dir
from dztest.pi_image import build_pi_image, need_tools

from daozhang.boards.load import load_board
from daozhang.host_tools.flash import linux, writer
from daozhang.host_tools.flash.check import check_card
from daozhang.host_tools.flash.errors import ImageError, VerifyFailed
from daozhang.host_tools.flash.fat import FatPartition
from daozhang.host_tools.flash.source import ImageSource


@pytest.fixture(scope="module")
def pi_image(tmp_path_factory):
    need_tools()
    path = str(tmp_path_factory.mktemp("img") / "raspios.img")
    parts = build_pi_image(path)
    return path, parts


def sha256_file(path, size=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size if size is not None else 1 << 62
        while left:
            chunk = f.read(min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def test_plain_write_reads_back_identical(pi_image, tmp_path):
    image, parts = pi_image
    target = str(tmp_path / "card.img")
    seen = []
    with ImageSource(image) as src:
        result = writer.write_image(src, target, progress_callback=lambda d, t: seen.append((d, t)))
    assert result.written == parts["size"] == os.path.getsize(target)
    assert seen[-1] == (parts["size"], parts["size"])
    assert writer.verify_target(target, result) == parts["size"]
    assert sha256_file(target) == sha256_file(image)
    assert [r[2] for r in result.ranges] == [hashlib.sha256(open(image, "rb").read()[o:o + n]).hexdigest()
                                             for o, n, _ in result.ranges]


def test_a_byte_changed_under_the_writer_is_caught(pi_image, tmp_path):
    image, parts = pi_image
    target = str(tmp_path / "card.img")
    with ImageSource(image) as src:
        result = writer.write_image(src, target)
    flip_at = parts["root"][0] + 12345          # inside the root partition
    with open(target, "r+b") as f:
        f.seek(flip_at)
        byte = f.read(1)
        f.seek(flip_at)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(VerifyFailed) as info:
        writer.verify_target(target, result)
    assert info.value.exit_code == 1
    assert info.value.where <= flip_at < info.value.where + writer.CHUNK
    assert "did not keep what was written" in str(info.value)


def test_a_byte_changed_under_the_writer_of_a_compressed_image_is_caught(pi_image, tmp_path):
    image, parts = pi_image
    gz = str(tmp_path / "raspios.img.gz")
    with open(image, "rb") as fin, gzip.open(gz, "wb", compresslevel=1) as fout:
        shutil.copyfileobj(fin, fout)
    target = str(tmp_path / "card.img")
    with ImageSource(gz) as src:
        result = writer.write_image(src, target)
    with open(target, "r+b") as f:
        f.seek(parts["boot"][0] + 777)
        f.write(b"\x5a")
    with pytest.raises(VerifyFailed, match="read back with sha256"):
        writer.verify_target(target, result)


def test_compressed_images_write_the_same_bytes(pi_image, tmp_path):
    image, _ = pi_image
    want = sha256_file(image)
    gz = str(tmp_path / "raspios.img.gz")
    with open(image, "rb") as fin, gzip.open(gz, "wb", compresslevel=1) as fout:
        shutil.copyfileobj(fin, fout)
    xz = str(tmp_path / "raspios.img.xz")
    subprocess.run(["xz", "-0", "-k", "-T1", "-c", image], stdout=open(xz, "wb"), check=True)
    zst = str(tmp_path / "raspios.img.zst")
    subprocess.run(["zstd", "-q", "-1", image, "-o", zst], check=True)
    for compressed in (gz, xz, zst):
        target = str(tmp_path / (os.path.basename(compressed) + ".card"))
        with ImageSource(compressed) as src:
            result = writer.write_image(src, target)
        writer.verify_target(target, result)
        assert sha256_file(target) == want, compressed


def test_corrupt_compressed_image_is_named(pi_image, tmp_path):
    image, _ = pi_image
    xz = str(tmp_path / "bad.img.xz")
    subprocess.run(["xz", "-0", "-k", "-T1", "-c", image], stdout=open(xz, "wb"), check=True)
    with open(xz, "r+b") as f:
        f.seek(os.path.getsize(xz) // 2)
        f.write(b"\x00\xff\x00\xff")
    with pytest.raises(ImageError) as info:
        with ImageSource(xz) as src:
            writer.write_image(src, str(tmp_path / "card.img"))
    assert "corrupt xz stream" in str(info.value)


def test_block_map_writes_only_mapped_ranges(pi_image, tmp_path):
    image, parts = pi_image
    bmap = str(tmp_path / "raspios.bmap")
    subprocess.run(["bmaptool", "create", image, "-o", bmap], check=True, capture_output=True)
    from daozhang.host_tools.flash.bmap import load_bmap
    block_map = load_bmap(bmap)
    target = str(tmp_path / "card.img")
    with open(target, "wb") as f:               # a "used" card: old bytes everywhere
        f.write(b"\xa5" * parts["size"])
    with ImageSource(image) as src:
        result = writer.write_image(src, target, block_map)
    assert result.written == block_map.mapped_bytes < parts["size"] // 2
    writer.verify_target(target, result)
    with open(target, "rb") as f, open(image, "rb") as g:
        card, img = f.read(), g.read()
    for offset, length, _ in block_map.ranges:
        assert card[offset:offset + length] == img[offset:offset + length]
    assert b"\xa5" * 4096 in card                # unmapped blocks were not written


def test_block_map_of_another_image_is_refused(pi_image, tmp_path):
    image, parts = pi_image
    other = str(tmp_path / "other.img")
    build_pi_image(other)                        # same layout, other mkfs UUIDs
    bmap = str(tmp_path / "other.bmap")
    subprocess.run(["bmaptool", "create", other, "-o", bmap], check=True, capture_output=True)
    from daozhang.host_tools.flash.bmap import load_bmap
    with pytest.raises(ImageError) as info:
        with ImageSource(image) as src:
            writer.write_image(src, str(tmp_path / "card.img"), load_bmap(bmap))
    assert "the block map says" in str(info.value)


def test_edited_block_map_is_refused(pi_image, tmp_path):
    image, _ = pi_image
    bmap = str(tmp_path / "x.bmap")
    subprocess.run(["bmaptool", "create", image, "-o", bmap], check=True, capture_output=True)
    text = open(bmap).read().replace("<Range chksum=", "<Range  chksum=", 1)
    open(bmap, "w").write(text)
    from daozhang.host_tools.flash.bmap import load_bmap
    with pytest.raises(ImageError, match="BmapFileChecksum"):
        load_bmap(bmap)


def _flash(image, tmp_path, **kw):
    prov = provision_dir(tmp_path)
    wheels = make_wheelhouse(tmp_path)
    target = str(tmp_path / "card.img")
    stages = set()
    report = linux.flash_card(image, target, load_board("rpi4"), provision_dir=prov, wheelhouse=wheels,
                              progress=lambda stage, d, t: stages.add(stage), **kw)
    return target, prov, report, stages


def test_flash_provisions_the_boot_partition(pi_image, tmp_path):
    image, parts = pi_image
    target, prov, report, stages = _flash(image, tmp_path)
    assert stages == {"write", "verify", "provision"}
    assert report["verified"] and report["provisioned"]["device_id"] == "pos-0042"
    with FatPartition(target, parts["boot"][0]) as fat:
        for name in os.listdir(prov):
            assert fat.read("/daozhang/state/" + name) == open(os.path.join(prov, name), "rb").read()
        cmdline = fat.read("/cmdline.txt").decode()
        unit = fat.read("/daozhang/daozhang-agent.service").decode()
        manifest = json.loads(fat.read("/daozhang/flash.json"))
    assert cmdline.count("\n") == 1 and "systemd.run=/boot/firmware/daozhang/firstboot.sh" in cmdline
    assert "WatchdogSec=60" in unit and "Type=notify" in unit
    assert "--config /var/lib/daozhang/agent.toml" in unit
    assert "PRIVATE KEY" not in json.dumps(manifest)
    # An independent FAT reader (mtools) sees the same files.
    listing = subprocess.run(["mdir", "-b", "-/", "-i", "%s@@%d" % (target, parts["boot"][0]), "::/daozhang"],
                             capture_output=True, text=True, check=True).stdout
    assert "/daozhang/state/device.key" in listing and "/daozhang/wheels/daozhang-0.1.0-py3-none-any.whl" in listing
    # Outside the boot partition the card is the image, byte for byte.
    with open(target, "rb") as f, open(image, "rb") as g:
        f.seek(parts["root"][0])
        g.seek(parts["root"][0])
        assert f.read() == g.read()


def test_check_reports_image_and_provisioning_without_secrets(pi_image, tmp_path):
    image, parts = pi_image
    target, prov, report, _ = _flash(image, tmp_path)
    result = check_card(target, image=image)
    assert result["findings"] == []
    assert result["image_match"] is True
    p = result["provisioning"]
    assert (p["device_id"], p["fingerprint"]) == ("pos-0042", report["provisioned"]["fingerprint"])
    assert "waiting for the first boot" in result["state"]
    assert "PRIVATE" not in json.dumps(result)
    # A byte changed on the root partition afterwards is a finding.
    with open(target, "r+b") as f:
        f.seek(parts["root"][0] + 4096)
        f.write(b"\x00\x01\x02")
    damaged = check_card(target)
    assert any("differ from what was flashed" in x for x in damaged["findings"])


def test_first_boot_installs_offline_and_enables_the_service(pi_image, tmp_path):
    image, parts = pi_image
    target, prov, _, _ = _flash(image, tmp_path)
    boot = tmp_path / "bootfs"                       # the FAT partition, extracted with pyfatfs
    with FatPartition(target, parts["boot"][0]) as fat:
        for path in fat.fs.walk.files("/"):
            dest = boot / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(fat.fs.readbytes(path))
    root = tmp_path / "root"
    root.mkdir()
    env = dict(os.environ, DAOZHANG_ROOT=str(root), PIP_NO_CACHE_DIR="1",
               DAOZHANG_PYTHON=shutil.which("python3"))
    env.pop("PIP_INDEX_URL", None)
    proc = subprocess.run(["sh", str(boot / "daozhang" / "firstboot.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    state = root / "var" / "lib" / "daozhang"
    assert (state / "device.key").stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "agent.toml").read_bytes() == open(os.path.join(prov, "agent.toml"), "rb").read()
    unit = root / "etc" / "systemd" / "system" / "daozhang-agent.service"
    assert "WatchdogSec=" in unit.read_text()
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "daozhang-agent.service"
    assert os.readlink(wants) == "/etc/systemd/system/daozhang-agent.service"
    out = subprocess.run([str(root / "opt" / "daozhang" / "bin" / "daozhang")], capture_output=True, text=True)
    assert out.stdout.strip() == "daozhang stub agent"
    assert not (boot / "daozhang" / "state").exists()           # no key left on the FAT partition
    assert "systemd.run" not in (boot / "cmdline.txt").read_text()
    assert (boot / "cmdline.txt").read_text().startswith("console=serial0")


@pytest.mark.slow
def test_real_sizes_rpi4_journal_and_a_512_mib_boot_partition(tmp_path):
    """The shipped rpi4 board's sizes: a 64 MiB journal (1 MiB segments) in the
    provisioned dir, a Raspberry Pi OS-sized 512 MiB FAT32 boot partition."""
    need_tools()
    image = str(tmp_path / "raspios.img")
    parts = build_pi_image(image, boot_mib=512, root_mib=64)
    from daozhang.signing import generate_keypair
    from daozhang.cli.main import cli
    from click.testing import CliRunner
    from dztest.agent_daemon import PROFILE
    generate_keypair(str(tmp_path / "backend"))
    prov = str(tmp_path / "pos-0100")
    result = CliRunner().invoke(cli, ["device", "provision", "--board", "rpi4", "--device-id", "pos-0100",
                                      "--profile", PROFILE, "--backend-pubkey", str(tmp_path / "backend.pub"),
                                      "--out", prov], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert os.path.getsize(os.path.join(prov, "journal.dzj")) > 64 << 20 - 1
    target = str(tmp_path / "card.img")
    linux.flash_card(image, target, load_board("rpi4"), provision_dir=prov,
                     wheelhouse=make_wheelhouse(tmp_path))
    with FatPartition(target, parts["boot"][0]) as fat:
        journal = fat.read("/daozhang/state/journal.dzj")
    assert journal == open(os.path.join(prov, "journal.dzj"), "rb").read()
    assert check_card(target, image=image)["findings"] == []


def test_check_after_first_boot_reads_the_root_partition(pi_image, tmp_path):
    """After the first boot the state lives in /var/lib/daozhang on ext4: the
    card is changed here as the terminal would (debugfs -w writes the files,
    the FAT copy is removed) and --check finds the provisioning there."""
    image, parts = pi_image
    target, prov, report, _ = _flash(image, tmp_path)
    commands = tmp_path / "debugfs.cmd"
    commands.write_text("mkdir /var/lib/daozhang\n" + "".join(
        "write %s /var/lib/daozhang/%s\n" % (os.path.join(prov, n), n) for n in ("agent.toml", "device.pub")))
    env = dict(os.environ, PATH=os.environ["PATH"] + ":/usr/sbin:/sbin")
    subprocess.run(["debugfs", "-w", "-f", str(commands), "%s?offset=%d" % (target, parts["root"][0])],
                   check=True, capture_output=True, env=env)
    with FatPartition(target, parts["boot"][0]) as fat:
        fat.remove_tree("/daozhang/state")
        fat.write("/daozhang/firstboot.done", b"2026-12-03T10:00:00Z\n")
    result = check_card(target)
    assert result["provisioning"]["device_id"] == "pos-0042"
    assert result["provisioning"]["fingerprint"] == report["provisioned"]["fingerprint"]
    assert result["state"] == "installed in /var/lib/daozhang (first boot done)"
    assert result["first_boot_done"] is True
    # The root partition changed (a booted system writes it): a note, not a finding.
    assert result["findings"] == []
    assert "of the root partition changed since the flash" in result["notes"][0]
