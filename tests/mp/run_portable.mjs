// Runs the portable test modules (tests/portable/test_*.py) under
// MicroPython 1.29 (WebAssembly port) with tests/mp/portable_runner.py.
// The RAM filesystem gets the same package tree CPython imports:
//   /daozhang/agent/core/**.py  agent/core and its packages
//   /daozhang/firmware/*.py     firmware
//   /portable/*.py              tests/portable
//   /vectors/*                  tests/vectors
// Usage: node run_portable.mjs <repo-root> [module ...]   (default: all)
//        node run_portable.mjs <repo-root> --script file.py  (run one script
//        with the same tree: firmware tests and bench/ use this)
//        node run_portable.mjs <repo-root> --script file.py --steps N
//        (with DZ_SOCKET_BRIDGE set, the script also has sockets: see below)
//        then calls the script's step(i) for i < N and finish(), each in its
//        own runPython call: the port's gc.collect() frees garbage only
//        between calls (it cannot scan the C stack inside one), so a live-heap
//        figure (gc.mem_alloc after gc.collect) is right only there.
// Prints one line per test and a closing "N passed, N failed" line; exits 1
// when a test failed or the runner itself crashed.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { socketBridge } from "./socket_bridge.mjs";

const [root, ...only] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({
  stdout: (s) => { process.stdout.write(s + "\n"); out += s + "\n"; },
});

// deep: also the folders under host (the core's packages: journal/, sync/, ...).
function copyDir(host, target, keep, deep = false) {
  mp.FS.mkdir(target);
  for (const entry of readdirSync(host, { withFileTypes: true })) {
    const name = entry.name;
    if (entry.isDirectory()) {
      if (deep && name !== "__pycache__") copyDir(join(host, name), target + "/" + name, keep, deep);
    } else if (keep(name)) {
      mp.FS.writeFile(target + "/" + name, readFileSync(join(host, name), "utf8"));
    }
  }
}
const py = (n) => n.endsWith(".py");
mp.FS.mkdir("/daozhang");
mp.FS.writeFile("/daozhang/__init__.py", "");
mp.FS.mkdir("/daozhang/agent");
mp.FS.writeFile("/daozhang/agent/__init__.py", "");
copyDir(join(root, "agent", "core"), "/daozhang/agent/core", py, true);
copyDir(join(root, "firmware"), "/daozhang/firmware", (n) => py(n) && n !== "manifest.py");
copyDir(join(root, "tests", "portable"), "/portable", py);
copyDir(join(root, "tests", "vectors"), "/vectors", (n) => !n.startsWith("."));

// DZ_SOCKET_BRIDGE='{"tls": {"ca", "cert", "key", "servername"}}' (or '{}'
// for plain TCP) gives the port sockets (tests/mp/socket_bridge.mjs): the
// usocket shim and micropython-lib's umqtt.simple (tests/mp/fetch_mplib.py)
// go on its filesystem, so firmware scripts talk MQTT to a real broker.
if (process.env.DZ_SOCKET_BRIDGE) {
  const options = JSON.parse(process.env.DZ_SOCKET_BRIDGE);
  mp.registerJsModule("dz_socket_bridge", socketBridge(options.tls || null));
  mp.FS.writeFile("/usocket.py", readFileSync(join(root, "tests", "mp", "usocket.py"), "utf8"));
  const umqtt = join(root, "tests", "mp", "mplib", "umqtt");
  if (!existsSync(join(umqtt, "simple.py"))) {
    process.stderr.write("umqtt.simple missing: run `python tests/mp/fetch_mplib.py`\n");
    process.exit(2);
  }
  copyDir(umqtt, "/umqtt", py);
}

// process.exit() drops what is still queued for a stdout pipe (libuv writes
// to a pipe asynchronously once the reader falls behind, as on a loaded
// machine): a firmware script's 2 MB journal image was cut short.  Exit only
// from the callback of a last write, which runs once everything before it
// has been flushed.
function exitAfterFlush(code) {
  process.stdout.write("", () => process.exit(code));
}

function runScript() {
  try {
    mp.runPython("import sys\nsys.path.insert(0, '/')\n" + readFileSync(only[1], "utf8"));
    const steps = only[2] === "--steps" ? Number(only[3]) : 0;
    for (let i = 0; i < steps; i++) mp.runPython("step(" + i + ")");
    if (steps) mp.runPython("finish()");
  } catch (e) {
    process.stderr.write(String(e && e.message ? e.message : e) + "\n");
    return 1;
  }
  return 0;
}

function runModules() {
  const modules = only.length ? only
    : readdirSync(join(root, "tests", "portable")).filter((n) => n.startsWith("test_") && py(n))
        .map((n) => n.slice(0, -3)).sort();
  const runner = readFileSync(join(root, "tests", "mp", "portable_runner.py"), "utf8");
  try {
    mp.runPython("import sys\nsys.path.insert(0, '/')\n" + runner
      + "\nrun_modules(" + JSON.stringify(modules) + ")\n");
  } catch (e) {
    process.stderr.write(String(e && e.message ? e.message : e) + "\n");
    return 1;
  }
  const closing = /(\d+) passed, (\d+) failed\s*$/.exec(out);
  return closing && Number(closing[1]) > 0 && Number(closing[2]) === 0 ? 0 : 1;
}

exitAfterFlush(only[0] === "--script" ? runScript() : runModules());
