// The Node side of the MicroPython socket bridge (tests/mp/socket_bridge.mjs):
// a worker thread that owns one TCP or TLS connection and answers the main
// thread's blocking calls through shared memory.  The main thread (running
// MicroPython, which cannot await) posts a request and parks in
// Atomics.wait; this thread's own event loop keeps receiving from the
// socket meanwhile, answers every request exactly once (data, end of
// stream, timeout or error) and wakes it with Atomics.notify.
//
// Shared memory: ctrl = Int32Array [state, status, length]; state 1 = an
// answer is ready.  status >= 0: bytes in `data`; -1 end of stream; -2 the
// read timed out; -3 error (its UTF-8 text in `data`, `length` bytes).
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";

const ctrl = new Int32Array(workerData.ctrl);
const data = new Uint8Array(workerData.data);
let sock = null;
let ended = false;
let failure = null;
let inbox = [];            // Buffers received and not yet read
let waiting = null;        // {n, timer} a read parked until data, end or timeout

function answer(status, bytes) {
  if (bytes) data.set(bytes, 0);
  Atomics.store(ctrl, 1, status);
  Atomics.store(ctrl, 2, bytes ? bytes.length : 0);
  Atomics.store(ctrl, 0, 1);
  Atomics.notify(ctrl, 0);
}

function fail(text) {
  answer(-3, Buffer.from(String(text), "utf8"));
}

function take(n) {
  const all = Buffer.concat(inbox);
  const out = all.subarray(0, Math.min(n, all.length, data.length));
  inbox = all.length > out.length ? [all.subarray(out.length)] : [];
  return out;
}

function serveWaiting() {
  if (!waiting) return;
  const buffered = inbox.reduce((k, b) => k + b.length, 0);
  if (buffered === 0 && !ended && !failure) return;
  clearTimeout(waiting.timer);
  const n = waiting.n;
  waiting = null;
  if (buffered > 0) {
    if (n === 0) { answer(buffered); return; }        // a wait: report, keep the bytes
    const out = take(n);
    answer(out.length, out);
  }
  else if (failure) fail(failure);
  else answer(-1);
}

function connect({ host, port, tlsOptions }) {
  const opts = { host, port };
  let s;
  if (tlsOptions) {
    s = tls.connect({ ...opts, ca: readFileSync(tlsOptions.ca), cert: readFileSync(tlsOptions.cert),
                      key: readFileSync(tlsOptions.key), servername: tlsOptions.servername || host });
  } else {
    s = net.connect(opts);
  }
  let settled = false;
  s.setNoDelay(true);
  s.once(tlsOptions ? "secureConnect" : "connect", () => { settled = true; sock = s; answer(0); });
  s.on("data", (b) => { inbox.push(b); serveWaiting(); });
  s.on("end", () => { ended = true; serveWaiting(); });
  s.on("close", () => { ended = true; serveWaiting(); });
  s.on("error", (e) => {
    if (!settled) { settled = true; fail(e.message); return; }
    failure = e.message;
    serveWaiting();
  });
}

parentPort.on("message", (req) => {
  try {
    if (req.op === "connect") {
      connect(req);
    } else if (req.op === "write") {
      if (!sock || ended) { fail(failure || "not connected"); return; }
      sock.write(Buffer.from(req.hex, "hex"), (err) => (err ? fail(err.message) : answer(0)));
    } else if (req.op === "read") {
      waiting = { n: req.n, timer: null };
      if (req.timeoutMs !== null) {
        waiting.timer = setTimeout(() => { waiting = null; answer(-2); }, req.timeoutMs);
      }
      serveWaiting();
    } else if (req.op === "close") {
      if (sock) sock.destroy();
      sock = null;
      ended = true;
      inbox = [];
      answer(0);
    } else {
      fail("unknown bridge op " + req.op);
    }
  } catch (e) {
    fail(e.message);
  }
});
