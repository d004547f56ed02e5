"""Flash a MicroPython terminal (boards/esp32s3.toml): firmware, code, provisioning.

  1. with --firmware: esptool writes it (esp32.py), with esptool's own
     "Hash of data verified";
  2. the core and firmware glue, compiled with mpy-cross 1.29, go to
     <root>lib/, the boot script firmware/board_main.py to <root>main.py (the
     board boots into the terminal), /board.json with the board file's pins
     and the device's settings, the key as a seed and the profile as JSON
     (board_json.py); the provisioned dir (agent.toml, keys, profile, TLS
     files) to the board's state_dir (/state) -- by SHA-256, unchanged files
     skipped (board_copy.py);
  3. the journal is not copied byte by byte over the REPL (64 KiB/s at best
     for a file that is mostly zeros): its 4 KiB superblock from the
     provisioned dir is sent and the board preallocates the file itself with
     the copied firmware code (flash_storage.create), so the journal keeps
     the provisioned journal id and device id.  An existing journal on the
     board is never touched.
"""

from daozhang.agent.core.journal import layout
from daozhang.host_tools.flash import board_copy, board_json, mpy_build
from daozhang.host_tools.flash.provisioning import read_provision_dir

CREATE_JOURNAL = """import sys
if '%(lib)s' not in sys.path:
    sys.path.insert(0, '%(lib)s')
import os, flash_storage
try:
    os.stat(%(path)r)
    print('kept')
except OSError:
    flash_storage.create(%(path)r, %(superblock)r, %(size)d)
    print('created')
"""


def board_files(board, provision_dir):
    """([(board path, bytes)], journal (path, superblock, size), summary)."""
    root = board.get("flash", {}).get("root", "/")
    state_dir = board["state_dir"].rstrip("/") + "/"
    summary, state = read_provision_dir(provision_dir)
    journal_name = board["journal"]["file"]
    files = mpy_build.compile_all(lib=root + "lib/")
    files = [("/" + p.lstrip("/"), d) for p, d in files]
    # The boot script and what it reads: the terminal starts at the next reset.
    files.append((root + "main.py", mpy_build.boot_script()))
    generated, _ = board_json.board_json(board, state, provision_dir, root)
    files += sorted(generated.items())
    journal = None
    for name, data in state.items():
        if name == journal_name:
            superblock = data[:layout.SUPERBLOCK_SIZE]
            geo = layout.decode_superblock(superblock)
            journal = (state_dir + name, superblock, geo.file_size)
        else:
            files.append((state_dir + name, data))
    return files, journal, summary


def flash_mcu(port, board, provision_dir, firmware=None, progress=None, open_board=board_copy.open_board):
    """The whole job; `progress(stage, done, total)` with stages firmware, copy."""
    fw = None
    if firmware is not None:
        from daozhang.host_tools.flash import esp32
        fw = esp32.write_firmware(port, board, firmware,
                                  None if progress is None else (lambda d, t: progress("firmware", d, t)))
    files, journal, summary = board_files(board, provision_dir)
    b = open_board(port, wait=10) if fw is not None else open_board(port)
    try:
        result = board_copy.sync_files(b, files, None if progress is None
                                       else (lambda d, t: progress("copy", d, t)))
        journal_state = None
        if journal is not None:
            root = board.get("flash", {}).get("root", "/")
            out = b.exec(CREATE_JOURNAL % {"lib": root + "lib", "path": journal[0], "superblock": journal[1],
                                           "size": journal[2]})
            journal_state = out.decode().strip()
    finally:
        b.close()
    result.update({"port": port, "device": {k: summary[k] for k in ("device_id", "board", "fingerprint",
                                                                      "broker")},
                   "journal": None if journal is None else {"path": journal[0], "size": journal[2],
                                                            "state": journal_state},
                   "firmware": fw})
    return result
