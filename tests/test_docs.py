"""The user documents stay documents for users: a short README without lab-notebook references,
and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# a commit hash: 7-40 hex digits holding both a digit and a letter (so years and words do not count)
COMMIT = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_short_and_names_no_commits_or_sessions():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert COMMIT.findall(text) == []
    assert re.findall(r"\bsessions?\b|tried, reverted", text, flags=re.IGNORECASE) == []


def test_commit_pattern_finds_hashes_and_spares_dates_and_words():
    assert COMMIT.findall("at e247841, on 2026-12-05, decade 1234567, facade") == ["e247841"]


def test_readme_links_lead_to_files_that_exist():
    text = README.read_text(encoding="utf-8")
    local = [link for link in LINK.findall(text) if "://" not in link]
    assert "docs/index.md" in local and "CONTRIBUTING.md" in local
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_every_page_in_the_mkdocs_nav_exists():
    pages = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert "index.md" in pages and "reference.md" in pages
    assert [page for page in pages if not (ROOT / "docs" / page).is_file()] == []


def test_readme_python_block_is_valid_python_using_the_public_api():
    text = README.read_text(encoding="utf-8")
    code = text.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    compile(code, "README.md", "exec")
    import paulow

    used = set(re.findall(r"\bpaulow\.(\w+)\(", code))
    assert used == {"train", "evaluate", "load_model", "finetune"}
    assert used <= set(paulow.__all__)
