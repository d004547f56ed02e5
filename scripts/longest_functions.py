"""Print the N longest functions of the source tree, longest first.

    python scripts/longest_functions.py [-n N] [ROOT]     # N defaults to 20

One line each: `path:line name lines`, where lines counts the def's first line
to its last (decorators, docstring and nested functions included).  Tests are
left out: the figure is for the closing note of issue 13 ("the longest
functions before and after").  Standard library only.
"""

import ast
import os
import sys

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", "dist", "__pycache__", "tests"}


def functions(root):
    """(lines, path, line, qualified name) of every def in every .py file under root."""
    out = []
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(base, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                try:
                    tree = ast.parse(f.read(), filename=rel)
                except SyntaxError:
                    continue
            out.extend(_defs(tree, rel, ""))
    return out


def _defs(node, rel, prefix):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([child.lineno] + [d.lineno for d in child.decorator_list])
            yield child.end_lineno - start + 1, rel, child.lineno, prefix + child.name
            yield from _defs(child, rel, prefix + child.name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _defs(child, rel, prefix + child.name + ".")
        else:
            yield from _defs(child, rel, prefix)


def main(argv):
    count = 20
    args = list(argv)
    if args[:1] == ["-n"]:
        try:
            count = int(args[1])
        except (IndexError, ValueError):
            print("longest_functions: -n needs a number")
            return 2
        args = args[2:]
    root = args[0] if args else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(root):
        print("longest_functions: %s is not a directory" % root)
        return 2
    ranked = sorted(functions(root), key=lambda f: (-f[0], f[1], f[2]))
    for lines, rel, line, name in ranked[:count]:
        print("%s:%d %s %d" % (rel, line, name, lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
