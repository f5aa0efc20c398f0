"""The browsable API reference at /api/docs, rendered on the server from the OpenAPI spec.

The page reads the same document that ``GET /api/openapi.json`` serves
(flask-smorest builds it from the marshmallow schemas the API really uses):
operations grouped by tag, their parameters, and request and response bodies
with every ``$ref`` resolved into nested field tables. No JavaScript, no CDN.
This is a plain Flask blueprint, so it is not itself part of the spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from flask import Blueprint, render_template, url_for
from flask_babel import gettext as _

from ..errors import REASON_BY_STATUS, DomainError, error_body
from ..extensions import api
from ..schemas import ErrorSchema

bp = Blueprint("docs", __name__)

METHODS = ("get", "post", "put", "patch", "delete")
MAX_DEPTH = 6


@dataclass
class SchemaField:
    """One row of a schema table; ``children`` are the rows of a nested object."""

    name: str
    type: str
    required: bool = False
    description: str = ""
    constraints: list[str] = field(default_factory=list)
    children: list[SchemaField] = field(default_factory=list)
    ref: str | None = None


@dataclass
class Body:
    """A request or response body: its type line and its fields."""

    type: str
    ref: str | None
    fields: list[SchemaField]
    description: str = ""


class SpecReader:
    """Resolves ``$ref``s of one OpenAPI document and flattens schemas into rows."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.components = spec.get("components", {})

    def resolve(self, node: dict) -> tuple[dict, str | None]:
        """Follow ``$ref`` (possibly chained) to the component it names."""
        ref_name = None
        seen = set()
        while isinstance(node, dict) and "$ref" in node and node["$ref"] not in seen:
            seen.add(node["$ref"])
            parts = node["$ref"].lstrip("#/").split("/")
            ref_name = parts[-1]
            target = self.spec
            for part in parts:
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
        return node if isinstance(node, dict) else {}, ref_name

    def type_label(self, schema: dict) -> tuple[str, str | None]:
        """A human type (``array of PostingOut``, ``string (date-time)``) and the ref's name."""
        schema, ref = self.resolve(schema)
        kind = schema.get("type")
        if kind == "array":
            inner, inner_ref = self.type_label(schema.get("items", {}))
            label = _("array of %(type)s", type=inner)
            ref = inner_ref or ref
        elif kind == "object" and "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            inner, inner_ref = self.type_label(schema["additionalProperties"])
            label = _("map of string → %(type)s", type=inner) if schema["additionalProperties"] else "object"
            ref = inner_ref or ref
        elif ref and (kind in (None, "object")):
            label = ref
        else:
            label = kind or "any"
            if schema.get("format"):
                label += f" ({schema['format']})"
        if schema.get("nullable"):
            label = _("%(type)s or null", type=label)
        return label, ref

    @staticmethod
    def constraints(schema: dict) -> list[str]:
        out = []
        if "enum" in schema:
            out.append(_("one of: %(values)s", values=", ".join(json.dumps(v) for v in schema["enum"])))
        for key, text in (
            ("minimum", "≥ %(value)s"),
            ("maximum", "≤ %(value)s"),
            ("exclusiveMinimum", "> %(value)s"),
            ("exclusiveMaximum", "< %(value)s"),
            ("minLength", _("at least %(value)s character(s)")),
            ("maxLength", _("at most %(value)s character(s)")),
            ("minItems", _("at least %(value)s item(s)")),
            ("maxItems", _("at most %(value)s item(s)")),
            ("pattern", _("matches %(value)s")),
        ):
            if key in schema and not isinstance(schema[key], bool):
                out.append(text % {"value": schema[key]})
        if "default" in schema:
            out.append(_("default %(value)s", value=json.dumps(schema["default"])))
        if schema.get("readOnly"):
            out.append(_("read-only"))
        if schema.get("writeOnly"):
            out.append(_("write-only"))
        return out

    def object_fields(self, schema: dict, depth: int = 0, trail: tuple = ()) -> list[SchemaField]:
        """The rows of an object schema (arrays and maps: the rows of their items)."""
        schema, ref = self.resolve(schema)
        if ref:
            if ref in trail or depth > MAX_DEPTH:
                return []
            trail = trail + (ref,)
        if schema.get("type") == "array":
            return self.object_fields(schema.get("items", {}), depth, trail)
        if "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            return self.object_fields(schema["additionalProperties"], depth, trail)
        required = set(schema.get("required", []))
        rows = []
        for name, prop in schema.get("properties", {}).items():
            resolved, _ref = self.resolve(prop)
            label, prop_ref = self.type_label(prop)
            rows.append(
                SchemaField(
                    name=name,
                    type=label,
                    required=name in required,
                    description=resolved.get("description", "") or prop.get("description", ""),
                    constraints=self.constraints(resolved),
                    children=self.object_fields(prop, depth + 1, trail),
                    ref=prop_ref,
                )
            )
        return rows

    def body(self, schema: dict, description: str = "") -> Body:
        label, ref = self.type_label(schema)
        return Body(type=label, ref=ref, fields=self.object_fields(schema), description=description)

    def parameters(self, path_item: dict, operation: dict) -> list[dict]:
        params = {}
        for raw in path_item.get("parameters", []) + operation.get("parameters", []):
            param, _ref = self.resolve(raw)
            schema, _ref = self.resolve(param.get("schema", {}))
            params[(param.get("in"), param.get("name"))] = {
                "name": param.get("name", ""),
                "in": param.get("in", ""),
                "required": bool(param.get("required")),
                "type": self.type_label(param.get("schema", {}))[0],
                "description": param.get("description", "") or schema.get("description", ""),
                "constraints": self.constraints(schema),
            }
        order = {"path": 0, "query": 1, "header": 2, "cookie": 3}
        return sorted(params.values(), key=lambda p: order.get(p["in"], 9))

    def security(self, operation: dict) -> list[str]:
        schemes = self.components.get("securitySchemes", {})
        labels = []
        for requirement in operation.get("security", self.spec.get("security", [])):
            for name in requirement:
                scheme = schemes.get(name, {})
                if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer":
                    labels.append(_("Bearer token: send the header Authorization: Bearer <token>"))
                else:
                    labels.append(name)
        return labels

    def responses(self, operation: dict) -> list[dict]:
        out = []
        for status, raw in operation.get("responses", {}).items():
            response, ref = self.resolve(raw)
            content = response.get("content", {}).get("application/json", {})
            headers = []
            for header_name, raw_header in response.get("headers", {}).items():
                header, header_ref = self.resolve(raw_header)
                headers.append({"name": header_name, "description": header.get("description", ""), "ref": header_ref})
            out.append(
                {
                    "status": status,
                    "description": response.get("description", ""),
                    "ref": ref,
                    "body": self.body(content["schema"]) if "schema" in content else None,
                    "headers": headers,
                    "is_error": status == "default" or status.startswith(("4", "5")),
                }
            )
        return sorted(out, key=lambda r: (r["status"] == "default", r["status"]))

    def operation(self, path: str, method: str, path_item: dict, operation: dict) -> dict:
        request_body = None
        if "requestBody" in operation:
            body, _ref = self.resolve(operation["requestBody"])
            content = body.get("content", {}).get("application/json", {})
            if "schema" in content:
                request_body = self.body(content["schema"], body.get("description", ""))
                request_body.description = _("required") if body.get("required") else _("optional")
        summary = operation.get("summary", "")
        description = operation.get("description", "")
        return {
            "anchor": (method + path).replace("/", "-").replace("{", "").replace("}", ""),
            "method": method.upper(),
            "path": path,
            "summary": summary,
            "description": description if description != summary else "",
            "security": self.security(operation),
            "parameters": self.parameters(path_item, operation),
            "request_body": request_body,
            "responses": self.responses(operation),
            "deprecated": bool(operation.get("deprecated")),
        }

    def groups(self) -> list[dict]:
        """Operations grouped by tag, in the spec's tag order (untagged last)."""
        tags = {
            t["name"]: {"name": t["name"], "description": t.get("description", ""), "operations": []}
            for t in self.spec.get("tags", [])
        }
        for path, path_item in self.spec.get("paths", {}).items():
            for method in METHODS:
                if method not in path_item:
                    continue
                operation = path_item[method]
                for tag in operation.get("tags") or ["other"]:
                    tags.setdefault(tag, {"name": tag, "description": "", "operations": []})
                    tags[tag]["operations"].append(self.operation(path, method, path_item, operation))
        return [group for group in tags.values() if group["operations"]]


def error_reference() -> dict:
    """The error body of every 4xx (shared/API.md), from the schema and the exceptions."""
    reader = SpecReader({})
    converted = api.ma_plugin.converter.schema2jsonschema(ErrorSchema)
    reasons = {}
    for cls in _subclasses(DomainError):
        reasons.setdefault(cls.reason, set()).add(cls.status)
    for status, reason in REASON_BY_STATUS.items():
        reasons.setdefault(reason, set()).add(status)
    example = error_body(409, "The wallet's available balance does not cover this amount.", "insufficient_funds")
    return {
        "fields": reader.object_fields(converted),
        "reasons": sorted((reason, sorted(statuses)) for reason, statuses in reasons.items()),
        "example": json.dumps(example, indent=2),
        "validation_example": json.dumps(
            error_body(
                422, f"Validation failed: amount: {_RANGE_MESSAGE}", "validation_error", {"amount": [_RANGE_MESSAGE]}
            ),
            indent=2,
        ),
    }


_RANGE_MESSAGE = "Must be greater than or equal to 1 and less than or equal to 1000000000000."


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@bp.get("/api/docs")
def index():
    spec = api.spec.to_dict()
    reader = SpecReader(spec)
    return render_template(
        "docs/index.html",
        info=spec.get("info", {}),
        openapi_version=spec.get("openapi", ""),
        groups=reader.groups(),
        errors=error_reference(),
        openapi_url=url_for("api-docs.openapi_json"),
    )
