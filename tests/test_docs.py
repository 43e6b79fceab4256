"""The README stays a page for users, and every file it or docs/ links to exists."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README_LIMIT = 15000  # bytes: what a user reads; method and history belong in docs/


def test_readme_is_under_its_size_limit():
    size = len((REPO / "README.md").read_bytes())
    assert size < README_LIMIT, "README.md is %d bytes; move method and history to docs/" % size


def test_relative_links_resolve():
    broken = []
    for page in [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append("%s -> %s" % (page.relative_to(REPO), target))
    assert not broken, broken
