"""docs/operations.md lists every setting exactly as stream_rec.config defines it."""

from __future__ import annotations

import dataclasses

import pytest

from stream_rec.config import Settings, settings_reference
from stream_rec.docs_config import (
    BEGIN,
    END,
    OPERATIONS_DOC,
    REGENERATE,
    main,
    render_table,
    replace_table,
)


def test_operations_doc_table_is_up_to_date() -> None:
    page = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert BEGIN in page and END in page, f"{OPERATIONS_DOC} lost its settings table markers"
    assert replace_table(page, render_table()) == page, (
        f"the settings table in {OPERATIONS_DOC} is out of date with stream_rec/config.py; "
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


def test_write_replaces_only_the_table(tmp_path) -> None:
    page = tmp_path / "ops.md"
    page.write_text(f"# Ops\n\nintro\n\n{BEGIN}\n| stale |\n{END}\n\n## Later section\ntext\n")
    assert main(["--write", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Ops\n\nintro\n\n") and text.endswith("## Later section\ntext\n")
    assert "| stale |" not in text and render_table() in text
    with pytest.raises(ValueError, match="no"):
        replace_table("no markers here", render_table())
