"""Check the layering rules of docs/DESIGN.md ("Layers") over the source tree.

    python scripts/check_architecture.py [ROOT]     # ROOT: the repository (default: this one)

Prints one line per finding, `path:line: rule: what`, and exits 1 if there is
any (0: clean, 2: ROOT unreadable).  Standard library only (ast, tomllib), so
CI can run it before anything is installed.  The rules (issue 13, "Measure it"):

- cycle: no import cycle among the project's modules.  Imports inside
  functions count as much as those at the top: a cycle "broken" by a
  function-level import is still a cycle a reader has to untangle.
- core-outside: agent/core imports nothing of the project outside agent/core
  (the portable, sans-IO core: it must run unchanged on MicroPython).
- adapter-import: backend/, host_tools/ and settlement_files/ import no
  agent adapter (agent/* outside agent/core): what they share with the agent
  belongs in the core or in a module of their own.  fleet/ is exempt: the
  simulator *is* N terminals, each running the agent's own journal file and
  frame reader, so that what it measures is what a terminal does.
- too-long: no .py file outside tests over 500 lines.

Module names come from pyproject.toml's [tool.setuptools] package-dir (the
directory of a package need not be its dotted name: daozhang.agent is
agent/); without it a file's module name is its path.  An import edge goes to
the module named (`import a.b.c` -> a/b/c.py; `from a.b import c` -> a/b/c.py
when c is a module, else a/b/__init__.py); the parent packages' __init__
files that Python also runs are not edges, so a package that re-exports its
submodules is not a cycle with each of them.
"""

import ast
import os
import sys
import tomllib

MAX_LINES = 500
CORE = "agent/core/"
ADAPTER_ROOT = "agent/"
NO_ADAPTERS_IN = ("backend/", "host_tools/", "settlement_files/")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", "dist", "__pycache__", ".pytest_cache"}


class Finding:
    __slots__ = ("path", "line", "rule", "text")

    def __init__(self, path, line, rule, text):
        self.path, self.line, self.rule, self.text = path, line, rule, text

    def __str__(self):
        return "%s:%d: %s: %s" % (self.path, self.line, self.rule, self.text)


def package_dirs(root):
    """{dotted package: directory relative to root} from pyproject.toml (may be empty)."""
    path = os.path.join(root, "pyproject.toml")
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        config = tomllib.load(f)
    mapping = config.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {name: directory.strip("/") for name, directory in mapping.items() if name}


def source_files(root):
    """Every .py file under root (relative, '/'-separated), sorted."""
    out = []
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in files:
            if name.endswith(".py"):
                out.append(os.path.relpath(os.path.join(base, name), root).replace(os.sep, "/"))
    return sorted(out)


def is_test(rel):
    parts = rel.split("/")
    return parts[0] == "tests" or parts[-1].startswith("test_") or parts[-1] == "conftest.py"


class ModuleMap:
    """Dotted module names <-> files, through the package-dir mapping."""

    def __init__(self, files, packages):
        self.by_name = {}
        self.by_file = {}
        dir_to_pkg = sorted(((d, p) for p, d in packages.items()), key=lambda dp: -len(dp[0]))
        for rel in files:
            name = self._name_of(rel, dir_to_pkg)
            self.by_name[name] = rel
            self.by_file[rel] = name

    @staticmethod
    def _name_of(rel, dir_to_pkg):
        stem = rel[:-3]
        for directory, package in dir_to_pkg:
            if stem == directory or stem.startswith(directory + "/"):
                rest = stem[len(directory):].strip("/")
                stem = package + ("/" + rest if rest else "")
                break
        parts = stem.replace("/", ".").split(".")
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def file_of(self, name):
        return self.by_name.get(name)

    def name_of(self, rel):
        return self.by_file[rel]


def imports_of(tree, module_name, is_package):
    """(line, dotted target, [imported names]) for every import anywhere in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module_name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                if keep < 0:
                    continue
                base = ".".join(parts[:keep] + ([base] if base else []))
            yield node.lineno, base, [alias.name for alias in node.names]


def import_edges(root, files, modules):
    """[(source file, line, target file)] between the project's own files."""
    edges = []
    for rel in files:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                tree = ast.parse(f.read(), filename=rel)
        except SyntaxError as exc:
            edges.append((rel, exc.lineno or 1, None))
            continue
        name = modules.name_of(rel)
        for line, target, names in imports_of(tree, name, rel.endswith("__init__.py")):
            named = [n for n in names if n != "*"]
            hits = [h for h in (modules.file_of(target + "." + n) for n in named) if h is not None]
            if not named or len(hits) < len(named):     # `import a.b`, `from a import *`, or a name in a
                whole = modules.file_of(target)
                if whole is not None:
                    hits.append(whole)
            for hit in hits:
                if hit != rel:
                    edges.append((rel, line, hit))
    return edges


def layer_findings(edges):
    out = []
    for src, line, dst in edges:
        if dst is None:
            out.append(Finding(src, line, "syntax", "does not parse"))
        elif src.startswith(CORE) and not dst.startswith(CORE):
            out.append(Finding(src, line, "core-outside", "agent/core imports %s: the core imports only "
                               "the core (move the code into agent/core or pass it in)" % dst))
        elif (src.startswith(NO_ADAPTERS_IN) and dst.startswith(ADAPTER_ROOT) and not dst.startswith(CORE)
              and dst != ADAPTER_ROOT + "__init__.py"):
            out.append(Finding(src, line, "adapter-import", "%s imports the agent adapter %s (share it "
                               "through agent/core or a module of its own)" % (src.split("/")[0], dst)))
    return out


def strongly_connected(graph):
    """Tarjan's algorithm, iterative: the components of `graph` {node: set(nodes)}."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                comps.append(sorted(comp))
    return comps


def shortest_cycle(graph, start, members):
    """A shortest path start -> ... -> start inside `members` (breadth first)."""
    previous = {start: None}
    queue = [start]
    for node in queue:
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return list(reversed(path)) + [start]
            if child in members and child not in previous:
                previous[child] = node
                queue.append(child)
    return [start, start]


def cycle_findings(edges):
    graph, where = {}, {}
    for src, line, dst in edges:
        if dst is None:
            continue
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
        where.setdefault((src, dst), line)
    out = []
    for comp in strongly_connected(graph):
        if len(comp) == 1 and comp[0] not in graph[comp[0]]:
            continue
        cycle = shortest_cycle(graph, comp[0], set(comp))
        text = "import cycle %s" % " -> ".join(cycle)
        if len(comp) > len(cycle) - 1:
            text += " (one of %d modules importing each other)" % len(comp)
        out.append(Finding(cycle[0], where[(cycle[0], cycle[1])], "cycle", text))
    return out


def length_findings(root, files):
    out = []
    for rel in files:
        if is_test(rel):
            continue
        with open(os.path.join(root, rel), "rb") as f:
            lines = f.read().count(b"\n")
        if lines > MAX_LINES:
            out.append(Finding(rel, MAX_LINES + 1, "too-long", "%d lines, at most %d outside tests: split it "
                               "by concept" % (lines, MAX_LINES)))
    return out


def check(root):
    """Every finding for the tree at `root`, in file order."""
    files = source_files(root)
    modules = ModuleMap(files, package_dirs(root))
    source = [rel for rel in files if not is_test(rel)]
    edges = import_edges(root, source, modules)
    findings = layer_findings(edges) + cycle_findings(edges) + length_findings(root, files)
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule))


def main(argv):
    root = argv[0] if argv else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(root):
        print("check_architecture: %s is not a directory" % root)
        return 2
    try:
        findings = check(root)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print("check_architecture: cannot read the tree at %s (%s)" % (root, exc))
        return 2
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
