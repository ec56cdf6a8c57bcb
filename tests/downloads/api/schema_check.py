"""Real answers checked against the served OpenAPI document with a strict OpenAPI 3.0
validator (openapi-schema-validator's OAS30StrictValidator, in the read direction: readOnly
fields allowed, writeOnly refused).

Each answer is validated twice: against the document as published (its own
`additionalProperties`), and against the same document with every object closed
(`additionalProperties: false` wherever it says nothing), so an answer carrying a key the
schema does not describe fails too. The operation is found from the method and the path the
way a client finds it (templated paths, with or without the trailing slash); an answer whose
status the operation does not document fails.
"""

import copy
import json
import re
from urllib.parse import urlsplit

from jsonschema.validators import extend
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30StrictValidator,
    oas30_strict_format_checker,
)

# The strict validator (no bytes for strings, strict formats) with the read direction's rules.
ReadStrictValidator = extend(
    OAS30StrictValidator,
    validators={
        "required": OAS30ReadValidator.VALIDATORS["required"],
        "writeOnly": OAS30ReadValidator.VALIDATORS["writeOnly"],
    },
)
_PARAMETER = re.compile(r"\{([^}]+)\}")


def closed(node):
    """A copy of `node` where every object schema that lists properties and says nothing of
    `additionalProperties` forbids them (members of a many-part `allOf` excepted: closing
    them would refuse each other's properties)."""
    node = copy.deepcopy(node)

    def walk(item, in_all_of=False):
        if isinstance(item, dict):
            if "properties" in item and "additionalProperties" not in item and not in_all_of:
                item["additionalProperties"] = False
            for key, value in item.items():
                if key == "allOf" and len(value) > 1:
                    for member in value:
                        walk(member, in_all_of=True)
                else:
                    walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(node)
    return node


class SchemaChecker:
    """Validates answers against one OpenAPI document (a dict)."""

    def __init__(self, document: dict):
        assert document["openapi"].startswith("3.0"), document["openapi"]
        self.document = document
        self.components = document.get("components", {})
        self.closed_components = closed(self.components)
        templates = []
        for template in document["paths"]:
            parts = _PARAMETER.split(template)  # literal, name, literal, …
            pattern = "".join(
                re.escape(part) if index % 2 == 0 else "[^/]+" for index, part in enumerate(parts)
            )
            templates.append((template.count("{"), re.compile(f"^{pattern}/?$"), template))
        # Literal paths before templated ones (`media/uploads` before `media/{id}`).
        self.templates = sorted(templates, key=lambda entry: entry[0])
        self.checked: list[tuple[str, str, int]] = []

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        """(path template, operation) of a request, or an AssertionError."""
        for _count, pattern, template in self.templates:
            if pattern.match(path):
                item = self.document["paths"][template]
                assert method.lower() in item, f"{method} {path}: not in the schema ({template})"
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path}: no path of the schema matches")

    def response_schema(self, method: str, path: str, status: int) -> dict:
        template, operation = self.operation(method, path)
        responses = operation["responses"]
        response = responses.get(str(status)) or responses.get("default")
        assert response is not None, (
            f"{method} {path} ({template}) answered {status}, which the schema does not "
            f"document (it has {sorted(responses)})"
        )
        content = response.get("content", {})
        assert "application/json" in content, f"{method} {template} {status}: no JSON body"
        return content["application/json"]["schema"]

    def validate(self, schema: dict, body, *, where: str = "") -> None:
        """`body` against `schema` (refs into the document's components), as published and
        closed; an AssertionError names the first problem."""
        for components in (self.components, self.closed_components):
            root = {"allOf": [schema], "components": components}
            validator = ReadStrictValidator(root, format_checker=oas30_strict_format_checker)
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
            if errors:
                error = errors[0]
                closed_note = "" if components is self.components else " (closed objects)"
                raise AssertionError(
                    f"{where}{closed_note}: {error.message} at "
                    f"{'/'.join(map(str, error.absolute_path)) or '(top)'}; "
                    f"{len(errors)} error(s); body: {json.dumps(body)[:800]}"
                )

    def check(self, method: str, path: str, status: int, body) -> None:
        """A real answer of `method path` against its operation's documented response."""
        if isinstance(body, bytes | str):
            body = json.loads(body)
        schema = self.response_schema(method, path, status)
        self.validate(schema, body, where=f"{method} {path} {status}")
        self.checked.append((method.upper(), self.operation(method, path)[0], status))

    def check_error(self, body, *, where: str = "") -> None:
        """An answer with no operation (an unknown route) against the error envelope."""
        self.validate({"$ref": "#/components/schemas/Error"}, body, where=where)

    def check_response(self, response) -> None:
        """A Django test client's or requests' response, by its request's method and path."""
        request = getattr(response, "request", None)
        if isinstance(request, dict):  # Django's test client
            method, path = request["REQUEST_METHOD"], request["PATH_INFO"]
            status, content = response.status_code, response.content
        else:  # requests or httpx
            method, path = request.method, urlsplit(str(request.url)).path
            status, content = response.status_code, response.content
        self.check(method, path, status, content)
