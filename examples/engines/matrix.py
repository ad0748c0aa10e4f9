"""The conformance matrix of the engines: one row per engine, one column per category.

Each cell reads ``passed/declared/failed`` (declared: expected failures, each with the
convention it differs in; checks skipped for a capability or a nondeterministic backward
are left out). ``nox -s engines`` writes each engine's results with ``--gradspec-report``,
then runs this on them::

    python examples/engines/matrix.py out/engines/*.json > out/engines/matrix.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conformance import CATEGORIES as ALL_CATEGORIES

#: the columns: every category but the capabilities, which no engine declares
CATEGORIES = [category for category in ALL_CATEGORIES if category != "capabilities"]


def matrix(reports: list[Path]) -> str:
    """The Markdown table of ``reports`` (``--gradspec-report`` files), one engine per row."""
    lines = [
        "| engine | " + " | ".join(CATEGORIES) + " |",
        "|---|" + "---:|" * len(CATEGORIES),
    ]
    for path in reports:
        report = json.loads(path.read_text())
        name = ", ".join(f"{b['name']} {b['version']}" for b in report["backends"])
        cells = []
        for category in CATEGORIES:
            counts = report["categories"].get(category, {})
            cells.append("/".join(str(counts.get(key, 0)) for key in ("passed", "declared", "failed")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(matrix([Path(p) for p in sys.argv[1:]]))
