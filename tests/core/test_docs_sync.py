"""The README cannot drift from the code: its settings table is generated from
``Settings``, and its test command is the one ``.ci/run`` runs."""

from __future__ import annotations

import re
from pathlib import Path

from classcord.config import settings_table

ROOT = Path(__file__).resolve().parents[2]
TABLE = re.compile(r"<!-- settings-table:[^>]*-->\n(?P<table>.*?)\n<!-- /settings-table -->", re.S)


def test_readme_settings_table_is_generated_from_settings() -> None:
    match = TABLE.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md lost its settings-table markers"
    assert match["table"] == settings_table(), (
        "README.md's settings table is stale: paste the output of `python3 -m classcord.config`"
    )


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- test-command -->\n```bash\n./scripts/test.sh\n```" in readme
