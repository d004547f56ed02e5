"""A MicroPython "board" on a pty: MicroPython 1.29's WebAssembly port in Node,
driven through its REPL (tests/mp/repl_bridge.mjs), its stdin/stdout on the
pty's master side.  `port` is the slave's path: mpremote, pyserial and
`daozhang device flash --port` open it as they would /dev/ttyACM0.  The
board's filesystem lives as long as the process.
"""

import os
import pty
import subprocess
import tty

from dztest.micropython import MP_DIR, micropython_available


class PtyBoard:
    def __init__(self):
        if not micropython_available():
            import pytest
            if os.environ.get("CI"):
                raise AssertionError("MicroPython port missing: run `npm ci --prefix tests/mp`")
            pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
        master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.proc = subprocess.Popen(["node", os.path.join(MP_DIR, "repl_bridge.mjs")], stdin=master,
                                     stdout=master, cwd=MP_DIR)
        os.close(master)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self._slave)
