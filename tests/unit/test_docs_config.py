"""The generated parts of the docs match the code: the settings table and the example files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stream_rec.config import Settings, settings_reference
from stream_rec.tools.docs_config import (
    BEGIN,
    DOCS_DIR,
    END,
    REGENERATE,
    main,
    refresh_includes,
    render_table,
    replace_table,
)


def test_operations_doc_table_is_up_to_date() -> None:
    page = (DOCS_DIR / "operations.md").read_text(encoding="utf-8")
    assert BEGIN in page and END in page, "docs/operations.md lost its settings table markers"
    assert replace_table(page, render_table()) == page, (
        "the settings table in docs/operations.md is out of date with stream_rec/config.py; "
        f"regenerate it with: {REGENERATE}")


def test_integration_doc_shows_the_example_files_as_they_are() -> None:
    page = (DOCS_DIR / "integration.md").read_text(encoding="utf-8")
    for example in ("examples/storefront_producer.py", "examples/recommendations_consumer.py"):
        assert f"<!-- BEGIN include {example} -->" in page, example
    assert refresh_includes(page) == page, (
        "docs/integration.md shows an old copy of a file in examples/; "
        f"regenerate it with: {REGENERATE}")


def test_table_has_one_row_per_setting_with_env_and_default() -> None:
    rows = [r for r in render_table().splitlines()[2:] if r]
    assert len(rows) == len(dataclasses.fields(Settings))
    for row, (name, env, default, _) in zip(rows, settings_reference(), strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[:2] == [f"`{name}`", f"`{env}`"]
        assert cells[2] == "(empty)" if default == "" else str(default).lower() in cells[2].lower()


def test_pipes_in_descriptions_do_not_break_the_table() -> None:
    # Any row must split into exactly four cells, whatever the description says.
    for row in render_table().splitlines():
        cells = row.replace("\\|", "").strip("|").split("|")
        assert len(cells) == 4, row


def test_write_refreshes_only_the_generated_parts(tmp_path: Path) -> None:
    (tmp_path / "operations.md").write_text(
        f"# Ops\n\nintro\n\n{BEGIN}\n| stale |\n{END}\n\n## Later section\ntext\n")
    (tmp_path / "integration.md").write_text(
        "# Integration\n<!-- BEGIN include examples/storefront_producer.py -->\n```python\nold\n"
        "```\n<!-- END include -->\nafter\n")
    assert main(["--write", "--docs", str(tmp_path)]) == 0
    ops = (tmp_path / "operations.md").read_text()
    assert ops.startswith("# Ops\n\nintro\n\n") and ops.endswith("## Later section\ntext\n")
    assert "| stale |" not in ops and render_table() in ops
    integration = (tmp_path / "integration.md").read_text()
    assert "\nold\n" not in integration and integration.endswith("<!-- END include -->\nafter\n")
    assert "def make_producer(" in integration
    with pytest.raises(ValueError, match="no"):
        replace_table("no markers here", render_table())
