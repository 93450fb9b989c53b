"""The JSON examples in docs/integration.md are valid messages, by schema and by the code."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import Event, Impression, InvalidEvent, parse_event, parse_message

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "integration.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"<!-- example: ([\w-]+) -->\n```json\n(.*?)```", PAGE, re.DOTALL)


def test_page_has_an_example_of_each_message() -> None:
    assert sorted(name for name, _ in EXAMPLES) == sorted(
        ["storefront-event", "storefront-event", "catalog-item", "recommendation",
         "dead-letter"])


@pytest.mark.parametrize("name, text", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_validates_against_its_schema(name: str, text: str) -> None:
    schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        json.loads(text))


def _example(name: str) -> Any:
    [text] = [t for n, t in EXAMPLES if n == name]
    return json.loads(text)


def test_examples_are_accepted_or_rejected_by_the_code_as_the_page_says() -> None:
    event, impression = [json.loads(t) for n, t in EXAMPLES if n == "storefront-event"]
    assert isinstance(parse_message(json.dumps(event).encode(), 65536), Event)
    assert isinstance(parse_message(json.dumps(impression).encode(), 65536), Impression)
    parse_catalog_item("sku-1187", json.dumps(_example("catalog-item")).encode())
    letter = _example("dead-letter")
    with pytest.raises(InvalidEvent) as rejected:
        parse_event(base64.b64decode(letter["raw_base64"]), 65536)
    assert rejected.value.reason == letter["reason"]
    assert base64.b64decode(letter["key_base64"]).decode() == "u-42"


def test_links_to_schemas_and_examples_exist() -> None:
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", PAGE):
        assert (ROOT / "docs" / target).resolve().exists(), target
