"""Text follows numbers: the fault table of docs/faults.md (and any other page that holds a copy) is
the one `make faults` measured (benchmarks/results/faults.json), and the README's summary of it,
"every figure it measured is 0", holds. After `make faults`, `python tests/test_faults_table.py`
writes the table into every page that holds its markers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/faults.json"
FAULTS_PAGE, README = ROOT / "docs/faults.md", ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]  # the table's page, and where a stale copy could hide
BLOCK = re.compile(r"<!-- faults-table -->\n.*?<!-- /faults-table -->", re.S)


def render(rows: list[dict]) -> str:
    lines = ["| scenario | repetitions | figure | measured (expected 0) |", "|---|---:|---|---:|"]
    lines += [f"| {row['scenario']} | {row['repetitions']} | {row['figure']} | {row['value']} |" for row in rows]
    return "<!-- faults-table -->\n" + "\n".join(lines) + "\n<!-- /faults-table -->"


def test_the_documented_fault_table_is_the_measured_one():
    table = render(json.loads(RESULTS.read_text()))
    assert BLOCK.search(FAULTS_PAGE.read_text()), f"{FAULTS_PAGE.name} has no fault table"
    for document in DOCUMENTS:
        found = BLOCK.search(document.read_text())
        assert found is None or found.group(0) == table, \
            f"{document.relative_to(ROOT)}: run `python tests/test_faults_table.py` after make faults"


def test_every_measured_figure_is_zero():
    assert "every figure it measured is 0" in " ".join(README.read_text().split())  # the README's summary
    assert all(row["value"] == 0 for row in json.loads(RESULTS.read_text()))


def test_the_table_covers_every_fault_scenario_of_the_tests():
    """A scenario added (or renamed) since the last `make faults` makes the table out of date."""
    declared = {match for path in (ROOT / "tests").glob("test_*.py")
                for match in re.findall(r'faults\(scenario="([^"]+)"\)', path.read_text())}
    assert {row["scenario"] for row in json.loads(RESULTS.read_text())} == declared


if __name__ == "__main__":
    table = render(json.loads(RESULTS.read_text()))
    for document in DOCUMENTS:  # every page that holds the markers (docs/faults.md among them)
        document.write_text(BLOCK.sub(lambda _: table, document.read_text()))
    sys.exit(0)
