// A blocking socket for MicroPython's WebAssembly port, which has no
// sockets: registered as the JS module `dz_socket_bridge`, it lets
// tests/mp/usocket.py (a `usocket` for the port) open real TCP or TLS
// connections, so micropython-lib's umqtt.simple runs unmodified against a
// real mosquitto.
//
// MicroPython runs on Node's main thread and its calls must return
// synchronously; Node's sockets are asynchronous.  So each connection lives
// in a worker thread (tests/mp/socket_worker.mjs) and every call posts a
// request to it and parks the main thread in Atomics.wait until the worker
// answers through shared memory (Node allows Atomics.wait on the main
// thread).  Bytes cross the FFI as hex text: the port's proxies turn JS
// strings into Python str cleanly, while bytes arrive as opaque proxies.
//
// TLS: with `tls` options ({ca, cert, key, servername}) the worker does the
// TLS handshake with the device's client certificate (Node's TLS stack, not
// MicroPython's: the port has no ssl module), so Python speaks plain MQTT
// over the bridge while the broker sees a TLS client with the device's
// certificate, exactly as on the shipped listener.  A worker answers every
// request, so the main thread never waits on a lost wake-up; a guard of
// GUARD_MS turns a wedged worker into an exception instead of a hang.
import { Worker } from "node:worker_threads";

const GUARD_MS = 120000;
const MAX_READ = 1 << 16;

export function socketBridge(tlsOptions) {
  let conn = null;

  function open() {
    const ctrl = new Int32Array(new SharedArrayBuffer(12));
    const data = new Uint8Array(new SharedArrayBuffer(MAX_READ));
    const worker = new Worker(new URL("./socket_worker.mjs", import.meta.url),
                              { workerData: { ctrl: ctrl.buffer, data: data.buffer } });
    worker.unref();
    return { ctrl, data, worker };
  }

  function call(request) {
    const { ctrl, data, worker } = conn;
    Atomics.store(ctrl, 0, 0);
    worker.postMessage(request);
    if (Atomics.wait(ctrl, 0, 0, GUARD_MS) === "timed-out") {
      throw new Error("socket bridge: no answer from the worker in " + GUARD_MS + " ms");
    }
    const status = Atomics.load(ctrl, 1);
    const length = Atomics.load(ctrl, 2);
    const bytes = Buffer.from(data.subarray(0, length));
    return { status, bytes };
  }

  return {
    // Each returns an int status (0 ok, -1 end of stream, -2 timed out) or
    // a str: the bytes read, as hex; an error is "!" + its text.
    connect(host, port, useTls) {
      if (conn) conn.worker.terminate();
      conn = open();
      const r = call({ op: "connect", host, port, tlsOptions: useTls ? tlsOptions : null });
      return r.status === -3 ? "!" + r.bytes.toString("utf8") : r.status;
    },
    write(hex) {
      const r = call({ op: "write", hex });
      return r.status === -3 ? "!" + r.bytes.toString("utf8") : r.status;
    },
    read(n, timeoutMs) {
      const r = call({ op: "read", n: Math.min(n, MAX_READ), timeoutMs: timeoutMs < 0 ? null : timeoutMs });
      if (r.status === -3) return "!" + r.bytes.toString("utf8");
      return r.status >= 0 ? r.bytes.toString("hex") : r.status;
    },
    // Bytes waiting (>= 1) once some arrived within timeoutMs, -2 if none, -1 at end of stream.
    wait(timeoutMs) {
      if (!conn) return -1;
      const r = call({ op: "read", n: 0, timeoutMs });
      return r.status === -3 ? -1 : r.status;
    },
    close() {
      if (!conn) return 0;
      call({ op: "close" });
      conn.worker.terminate();
      conn = null;
      return 0;
    },
  };
}
