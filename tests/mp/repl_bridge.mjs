// A MicroPython "board" on a serial line: MicroPython 1.29's WebAssembly port
// driven through its REPL entry points (replInit, replProcessChar), with
// stdin/stdout as the wire.  tests/dztest/mp_board.py puts a pty on them so
// that mpremote (and anything that opens a serial port) talks to it as to a
// board on /dev/ttyACM0.  Its filesystem is the port's VFS (Emscripten MEMFS
// mounted at /): what mpremote copies stays there until the process ends.
// Usage: node repl_bridge.mjs
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const mp = await loadMicroPython({
  stdout: (bytes) => process.stdout.write(bytes),
  linebuffer: false,
  heapsize: 8 * 1024 * 1024,
});
mp.FS.mkdir("/flash");
mp.replInit();
let queue = Promise.resolve();
process.stdin.on("data", (data) => {
  for (const c of data) {
    queue = queue.then(() => mp.replProcessCharWithAsyncify(c));
  }
});
process.stdin.on("end", () => queue.then(() => process.exit(0)));
