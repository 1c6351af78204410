"""What the docs tests read: code blocks and tables of the docs, rule names."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

from app.engine import rules

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
POLICY_DOC = DOCS / "policy.md"
RECORDS_DOC = DOCS / "records.md"
CHANGELOG = ROOT / "CHANGELOG.md"
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "deploy" / "examples"

_FENCE = re.compile(r"^```(.*)$")
_SCHEMA_MARK = re.compile(r"^<!-- schema: ([a-z-]+\.schema\.json) -->$")
_BACKTICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its info string, text and first line number."""

    info: str
    text: str
    line: int
    schema: str | None  # the schema a `<!-- schema: ... -->` line names

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def label(self) -> str:
        return f"line {self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        schema = _schema_mark(lines, index)
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        text = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(opening.group(1).strip(), text, index + 2, schema))
        index = end + 1
    return blocks


def section(path: Path, heading: str) -> str:
    """The text under a heading, up to the next heading of its level or above."""
    level = len(heading.split(" ", 1)[0])
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    match = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest if match is None else rest[: match.start()]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table body row in `text`; headers are skipped."""
    lines = text.splitlines()
    rows = []
    for index, line in enumerate(lines):
        is_next_a_rule = index + 1 < len(lines) and _is_rule(lines[index + 1])
        if not line.startswith("|") or _is_rule(line) or is_next_a_rule:
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _is_rule(line: str) -> bool:
    return line.startswith("|") and set(line) <= set("|-: ")


def backticked(cell: str) -> list[str]:
    return _BACKTICKED.findall(cell)


def anchors(path: Path) -> set[str]:
    """The link targets the headings of a Markdown file give on GitHub."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            found.add(slug)
    return found


def _schema_mark(lines: list[str], fence: int) -> str | None:
    previous = fence - 1
    if previous < 0:
        return None
    match = _SCHEMA_MARK.match(lines[previous])
    return None if match is None else match.group(1)


def engine_rule_names() -> set[str]:
    """The RULE of every module in app/engine/rules: the names reasons carry."""
    names = set()
    for module in pkgutil.iter_modules(rules.__path__):
        loaded = importlib.import_module(f"{rules.__name__}.{module.name}")
        names.add(loaded.RULE)
    return names
