"""The browsable API reference (/api/docs) and the OpenAPI document it is built from."""

import json
import re
from html import unescape

from marketplace.extensions import api as smorest_api


def _spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    return json.loads(response.get_data(as_text=True))


def _section(page: str, anchor: str) -> str:
    """The HTML of one operation's <section>, found by its id."""
    start = page.index(f'id="{anchor}"')
    end = page.find('<section class="docs-op', start + 1)
    return page[start : end if end != -1 else len(page)]


def test_openapi_json_is_valid_and_has_the_paths(client):
    spec = _spec(client)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"]
    v1 = [path for path in spec["paths"] if path.startswith("/api/v1/")]
    for path in (
        "/api/v1/members",
        "/api/v1/tokens",
        "/api/v1/wallet",
        "/api/v1/ledger/entries",
        "/api/v1/ledger/trial-balance",
    ):
        assert path in v1
    assert "/api/docs" not in spec["paths"]  # the docs page is not part of the API
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_docs_page_lists_every_api_path_and_method(client):
    spec = _spec(client)
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    page = unescape(response.get_data(as_text=True))
    assert "<script" not in page.split("</head>")[1]  # readable without JavaScript
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no CDN, nothing off-site
    operations = 0
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        assert f'<code class="op-path">{path}</code>' in page, path
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                operations += 1
                anchor = (method + path).replace("/", "-").replace("{", "").replace("}", "")
                section = _section(page, anchor)
                assert method.upper() in section and path in section
                summary = item[method].get("summary")
                if summary:
                    assert summary in section, (method, path)
    assert page.count('<section class="docs-op') == operations
    assert 'href="/api/openapi.json"' in page
    # The contents link to every operation.
    assert (
        page.count('<li><a href="#get-')
        + page.count('<li><a href="#post-')
        + page.count('<li><a href="#put-')
        + page.count('<li><a href="#delete-')
        + page.count('<li><a href="#patch-')
        == operations
    )


def test_docs_page_renders_request_and_response_schemas(client):
    page = unescape(client.get("/api/docs").get_data(as_text=True))
    signup = _section(page, "post-api-v1-members")
    assert "Request body" in signup and "Fields of MemberIn" in signup
    for name in ("email", "password", "display_name", "role"):
        assert f'<code class="field-name">{name}</code>' in signup, name
    assert "at least 8 character(s)" in signup and 'one of: "member", "supplier"' in signup
    assert "Fields of MemberOut" in signup and '<code class="field-name">kyc_status</code>' in signup
    assert "None: no token needed." in signup

    deposit = _section(page, "post-api-v1-wallet-deposits")
    assert '<code class="field-name">payment_method</code>' in deposit
    assert "Integer minor units (cents)." in deposit and "≤ 1000000000000" in deposit
    assert "Authorization: Bearer <token>" in deposit

    # $ref inside a response is resolved into a nested table.
    statement = _section(page, "get-api-v1-ledger-accounts-code")
    assert "array of StatementPostingOut" in statement
    assert "Fields of postings (StatementPostingOut)" in statement
    assert '<code class="field-name">balance_after</code>' in statement
    assert "X-Pagination" in statement
    assert "<code>code</code></th>\n            <td>path</td>" in statement  # the path parameter

    entries = _section(page, "get-api-v1-ledger-entries")
    assert '<code class="field-name">postings</code>' in entries and "Signed: &gt; 0 debit" not in entries
    assert "Signed: > 0 debit, < 0 credit." in entries


def test_docs_page_documents_the_error_body(client):
    page = unescape(client.get("/api/docs").get_data(as_text=True))
    errors = page[page.index('id="errors"') :]
    for name in ("code", "status", "message", "reason", "errors"):
        assert f'<code class="field-name">{name}</code>' in errors, name
    for reason in (
        "insufficient_funds",
        "pool_not_open",
        "not_verified",
        "idempotency_key_reused",
        "already_exists",
        "invalid_state",
        "limit_exceeded",
        "validation_error",
    ):
        assert f"<code>{reason}</code>" in errors, reason
    example = json.loads(re.search(r"<code>(\{.*?\})</code>", errors, re.S).group(1))
    assert set(example) == {"code", "status", "message", "reason", "errors"}


def test_docs_page_survives_odd_specs(app):
    """Chained and circular $refs, maps and untagged operations render without loops."""
    from marketplace.docs.views import SpecReader

    spec = {
        "openapi": "3.0.3",
        "paths": {
            "/api/v1/tree": {
                "get": {
                    "summary": "A tree",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Alias"}}},
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Alias": {"$ref": "#/components/schemas/Node"},
                "Node": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 5},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            }
        },
    }
    groups = SpecReader(spec).groups()
    assert [g["name"] for g in groups] == ["other"]
    body = groups[0]["operations"][0]["responses"][0]["body"]
    assert body.type == "Node"
    names = {f.name: f for f in body.fields}
    assert names["name"].required and names["name"].constraints == ["at most 5 character(s)"]
    assert names["children"].type == "array of Node" and names["children"].children == []  # the cycle stops
    assert names["totals"].type == "map of string → integer"
    assert smorest_api.spec.to_dict()["paths"]  # the real spec is untouched
