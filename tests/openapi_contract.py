"""Validate HTTP responses against schemas/openapi.yaml (with the topic schemas it reuses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
BASE = "https://stream-rec.dev/schemas/"


class Contract:
    """The OpenAPI document, and a validator for each documented response."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = yaml.safe_load((SCHEMAS / "openapi.yaml").read_text())
        resources: list[tuple[str, Resource[Any]]] = [
            (BASE + "openapi.yaml", DRAFT202012.create_resource(self.doc))]
        for path in SCHEMAS.glob("*.schema.json"):
            schema = json.loads(path.read_text())
            resources.append((BASE + path.name, DRAFT202012.create_resource(schema)))
        self.registry: Registry[Any] = Registry().with_resources(resources)

    def operation(self, template: str) -> dict[str, Any]:
        operation: dict[str, Any] = self.doc["paths"][template]["get"]
        return operation

    def validate(self, template: str, status: int, body: Any,
                 content_type: str = "application/json") -> None:
        """Raise ``jsonschema.ValidationError`` unless ``body`` is what the contract says
        ``GET template`` answers with ``status``; KeyError when the status is undocumented."""
        response = self.operation(template)["responses"][str(status)]
        if "$ref" in response:  # a response shared under components/responses
            parts = ["components", "responses", response["$ref"].rsplit("/", 1)[-1]]
        else:
            parts = ["paths", template, "get", "responses", str(status)]
        parts += ["content", content_type, "schema"]
        pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
        schema = {"$ref": f"{BASE}openapi.yaml#/{quote(pointer, safe='/~')}"}
        Draft202012Validator(schema, registry=self.registry,
                             format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)
