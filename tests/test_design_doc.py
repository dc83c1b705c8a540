"""Every "DESIGN §N.N" in the sources names a heading of docs/design.md: a reference such as `DESIGN §1.3`,
`DESIGN §1.4–1.5` (both ends) or `DESIGN §1.3, §2.1` (each number) must find a Markdown heading whose text begins with
that number (`### 1.3 Granularity, backfill, clip`, `## 5. Known pitfalls`). Lines inside fenced code blocks are not
headings (an arith trace's `#### 14` is an answer line)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "design.md"
SCANNED = ("src", "benchmarks")  # every .py and .md file under these folders

NUMBER = r"\d+(?:\.\d+)*"
# "DESIGN §1.4–1.5", "DESIGN §1.3, §2.1", "DESIGN §5": the first number and any range end or further § that follows
REFERENCE = re.compile(rf"DESIGN §({NUMBER}(?:\s*[–-]\s*{NUMBER}|,\s*§{NUMBER})*)")
HEADING = re.compile(rf"#{{1,6}}\s+({NUMBER})\.?(?:\s|$)")


def headings(text: str) -> set[str]:
    """The section numbers of a Markdown text's headings, outside fenced code blocks."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            found.add(m[1])
    return found


def references(text: str) -> list[str]:
    """Every section number a text's "DESIGN §" references name, in order."""
    return [number for m in REFERENCE.finditer(text) for number in re.findall(NUMBER, m[1])]


def sources() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md"))


def dangling(files: list[Path], known: set[str], root: Path = ROOT) -> list[str]:
    """`path:line: DESIGN §N` (path relative to `root`) for every reference that names no known heading."""
    out = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            out += [f"{path.relative_to(root)}:{lineno}: DESIGN §{n}" for n in references(line) if n not in known]
    return out


def test_the_parsers_on_hand_written_text() -> None:
    assert references("see DESIGN §1.4–1.5; DESIGN §1.3, §2.1 and DESIGN §5: and DESIGN §2.6.") == [
        "1.4", "1.5", "1.3", "2.1", "5", "2.6",
    ]  # fmt: skip
    doc = "# title\n## 5. Known pitfalls\n### 1.3 Granularity\n```\n#### 14\n```\n#### 2.6 What\n##no 7"
    assert headings(doc) == {"5", "1.3", "2.6"}


def test_a_reference_to_no_heading_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text('"""Backfill (DESIGN §1.3), the loop (DESIGN §1.4–1.6) and (DESIGN §9.9)."""\n', encoding="utf-8")
    known = headings("## 1. The algorithm\n### 1.3 Backfill\n### 1.4 Advantages\n### 1.6 Baselines\n")
    assert dangling([source], known, root=tmp_path) == ["module.py:1: DESIGN §9.9"]
    without_1_6 = dangling([source], known - {"1.6"}, root=tmp_path)
    assert without_1_6 == ["module.py:1: DESIGN §1.6", "module.py:1: DESIGN §9.9"]  # a range's far end counts too


def test_the_sources_hold_references() -> None:
    found = [n for path in sources() for n in references(path.read_text(encoding="utf-8"))]
    assert len(found) >= 20, f"only {len(found)} DESIGN § references found under {SCANNED}: is the regex broken?"
    assert {"1.1", "1.3", "2.1", "2.6", "5"} <= set(found)


def test_every_design_reference_names_a_heading_of_docs_design_md() -> None:
    known = headings(DOC.read_text(encoding="utf-8"))
    missing = dangling(sources(), known)
    assert not missing, (
        f"{len(missing)} reference(s) name no heading of docs/design.md (headings: {sorted(known)}):\n"
        + "\n".join(missing)
        + "\nadd the heading, or point the reference at the right one"
    )
