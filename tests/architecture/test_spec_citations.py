"""Citations stay true: every `SPEC 7.8.3` (or `SPEC.md §7.8.3`) in the tree
names a section docs/SPEC.md has, and every docs/... .md path cited exists.
(Issue 13 found eleven comments citing spec files merged into SPEC.md long
before; a heading renumbered without its citations would go the same way.)"""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CITATION = re.compile(r"SPEC(?:\.md)?,? ?(?:§ ?|section )?(\d+(?:\.\d+)*)")
DOC_PATH = re.compile(r"\bdocs/[A-Za-z0-9_./-]+\.md\b")


def tracked_text_files():
    out = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml", "*.mjs", "*.conf", "*.service"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in out:
        path = os.path.join(ROOT, rel)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                yield rel, f.read()


def spec_sections():
    with open(os.path.join(ROOT, "docs", "SPEC.md"), encoding="utf-8") as f:
        return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", f.read(), re.M))


def test_every_spec_section_cited_exists():
    sections = spec_sections()
    assert "7.8.3" in sections and "3.15" in sections
    missing = ["%s:%d: SPEC %s" % (rel, text.count("\n", 0, m.start()) + 1, m.group(1))
               for rel, text in tracked_text_files() for m in CITATION.finditer(text)
               if m.group(1) not in sections]
    assert missing == []


def test_every_docs_file_cited_exists():
    missing = ["%s:%d: %s" % (rel, text.count("\n", 0, m.start()) + 1, m.group(0))
               for rel, text in tracked_text_files() for m in DOC_PATH.finditer(text)
               if not os.path.exists(os.path.join(ROOT, m.group(0)))]
    assert missing == []
