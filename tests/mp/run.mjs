// Runs Python code under MicroPython 1.29 (WebAssembly port) with the
// portable core placed on its RAM filesystem as the package
// daozhang.agent.core.  Usage: node run.mjs <repo-root> <script.py>
// Prints the script's stdout; exits 1 with the traceback on an exception.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [root, script] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\n"; } });
for (const dir of ["/daozhang", "/daozhang/agent"]) {
  mp.FS.mkdir(dir);
  mp.FS.writeFile(dir + "/__init__.py", "");
}
// The core and its packages (journal/, sync/, ...), each with its own __init__.py.
function copyCore(host, target) {
  mp.FS.mkdir(target);
  for (const entry of readdirSync(host, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") copyCore(join(host, entry.name), target + "/" + entry.name);
    } else if (entry.name.endsWith(".py")) {
      mp.FS.writeFile(target + "/" + entry.name, readFileSync(join(host, entry.name), "utf8"));
    }
  }
}
copyCore(join(root, "agent", "core"), "/daozhang/agent/core");
mp.FS.mkdir("/vectors");
const vectors = join(root, "tests", "vectors");
for (const name of readdirSync(vectors)) {
  if (!name.startsWith(".")) {
    mp.FS.writeFile("/vectors/" + name, readFileSync(join(vectors, name), "utf8"));
  }
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + readFileSync(script, "utf8"));
  process.stdout.write(out);
} catch (e) {
  process.stdout.write(out);
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
