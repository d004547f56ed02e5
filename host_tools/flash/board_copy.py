"""Copy files onto a MicroPython board over its REPL, with mpremote as a library.

Like `mpremote cp`, but for a whole set: one round trip asks the board for the
SHA-256 of every file already there (hashlib on the board), files whose hash
matches are skipped, the rest are written (mpremote's fs_writefile, with a
progress_callback) and hashed again on the board to prove they landed.

`open_board(port)` enters the raw REPL.  A soft reset (Ctrl-D) first, as
mpremote does, and raw-paste mode where the board supports it; MicroPython's
WebAssembly port (sys.platform "webassembly", which the tests use as a board
through a pty) has neither: its event-driven REPL prints no "soft reboot" and
answers raw-paste with an immediate end, so for it the plain raw REPL is used.
"""

import ast
import hashlib

from daozhang.host_tools.flash.errors import BoardError, VerifyFailed

NO_REPL = ("no MicroPython REPL on %s: is the board in bootloader mode? flash firmware first with "
           "--firmware (or press RESET and retry)")


class Board:
    def __init__(self, transport, port):
        self.t = transport
        self.port = port

    def exec(self, code):
        from mpremote.transport import TransportError
        try:
            return self.t.exec(code)
        except TransportError as exc:
            raise BoardError("%s: the board failed running a command: %s" % (self.port, exc)) from None

    def hashes(self, paths):
        """{path: sha256 hex or None} for files on the board, in one round trip."""
        code = ("import hashlib, binascii\nout = {}\nfor p in %r:\n"
                "    try:\n        f = open(p, 'rb')\n    except OSError:\n        out[p] = None\n        continue\n"
                "    h = hashlib.sha256()\n    while True:\n        b = f.read(1024)\n        if not b:\n            break\n"
                "        h.update(b)\n    f.close()\n    out[p] = binascii.hexlify(h.digest()).decode()\n"
                "print(repr(out))\n") % (list(paths),)
        text = self.exec(code).decode().strip()
        return ast.literal_eval(text)

    def makedirs(self, dirs):
        code = "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n" % (
            sorted(dirs, key=len),)
        self.exec(code)

    def write(self, path, data, progress_callback=None):
        from mpremote.transport import TransportError
        try:
            self.t.fs_writefile(path, data, progress_callback=progress_callback)
        except TransportError as exc:
            raise BoardError("%s: writing %s failed: %s (board full? see `df` in mpremote)"
                             % (self.port, path, exc)) from None

    def platform(self):
        return self.exec("import sys\nprint(sys.platform)").decode().strip()

    def close(self):
        try:
            self.t.exit_raw_repl()
        finally:
            self.t.close()


def open_board(port, wait=0):
    """`wait` seconds for the port to appear (a board re-enumerating on USB
    after esptool reset it)."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport
    try:
        t = SerialTransport(port, baudrate=115200, wait=wait)
    except TransportError as exc:
        raise BoardError("cannot open %s: %s (is the board plugged in, and no serial monitor or "
                         "`daozhang device pull` using the port?)" % (port, exc)) from None
    try:
        # mpremote reads a pty without a timeout: a port where nothing answers
        # would hang; with one, enter_raw_repl gives up after its 10 s.
        t.serial.timeout = 1
        t.enter_raw_repl(soft_reset=False)
        t.serial.timeout = None
        t.use_raw_paste = False
        board = Board(t, port)
        if board.platform() != "webassembly":
            t.serial.timeout = 1
            t.enter_raw_repl(soft_reset=True)
            t.serial.timeout = None
            t.use_raw_paste = True
    except (TransportError, OSError, BoardError):
        t.close()
        raise BoardError(NO_REPL % port) from None
    return board


def parents(path):
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def sync_files(board, files, progress_callback=None):
    """Put `files` [(path, bytes)] on the board; return {"copied": [...], "skipped": [...]}."""
    have = board.hashes([p for p, _ in files])
    todo = [(p, d) for p, d in files if have.get(p) != hashlib.sha256(d).hexdigest()]
    dirs = set()
    for p, _ in todo:
        dirs.update(parents(p))
    if dirs:
        board.makedirs(dirs)
    total = sum(len(d) for _, d in todo)
    done = 0
    for path, data in todo:
        base = done
        board.write(path, data, None if progress_callback is None
                    else (lambda d, _t, base=base: progress_callback(base + d, total)))
        done += len(data)
    after = board.hashes([p for p, _ in todo]) if todo else {}
    for path, data in todo:
        if after.get(path) != hashlib.sha256(data).hexdigest():
            raise VerifyFailed("%s: %s reads back on the board with SHA-256 %s, wrote %s: flash again; "
                               "if it repeats, the board's filesystem is damaged"
                               % (board.port, path, after.get(path), hashlib.sha256(data).hexdigest()))
    copied = set(p for p, _ in todo)
    return {"copied": sorted(copied), "skipped": [p for p, _ in files if p not in copied], "bytes": total}
