"""schemathesis against the served schema, on PostgreSQL, with the inputs that once reached a
500: JSON nested deeper than the parser's bound (64), lone surrogates and NUL characters in
string values and in keys, NULs in query parameter names and values. Every operation of the
merchant API and of the public licence API; the assertion is schemathesis' own
`not_a_server_error`.

schemathesis cannot make these by itself (its strings are UTF-8-encodable, so never a lone
surrogate; its bodies follow the schema's shape, so never 65 levels deep), so each operation
gets hand-written cases first, then cases schemathesis generates from the schema with the
hostile part drawn by hypothesis and spliced in: into a field, as a key, as the whole body or
in the query. JSON bodies go as text written here (`json.dumps` escapes a surrogate as
`\\ud800`, valid JSON that decodes to one; a nesting of thousands is written as brackets, not
built as Python objects).
"""

import json
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from accounts.models import ApiKey
from downloads.api.parsers import MAX_JSON_DEPTH
from downloads_project.wsgi import application
from tests import factories

# Generated cases per operation, beside the hand-written ones: writes get more (their hostile
# part lands inside a body schemathesis made valid, so it reaches the fields' validation).
GENERATED_WRITES, GENERATED_READS = 6, 2
WRITES = {"POST", "PUT", "PATCH"}
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")


# --- The hostile parts ------------------------------------------------------------------------


def nested(depth: int, kind: str = "list", leaf: str = '"x"') -> str:
    """JSON text nested `depth` levels: lists, objects, or both in turn."""
    opens, closes = [], []
    for level in range(depth):
        as_list = kind == "list" or (kind == "mixed" and level % 2 == 0)
        opens.append("[" if as_list else '{"k":')
        closes.append("]" if as_list else "}")
    return "".join(opens) + leaf + "".join(reversed(closes))


def json_text(body, *, splice: dict[str, str] | None = None) -> bytes:
    """`body` as JSON text (ASCII: surrogates and NULs escaped), with each placeholder value
    of `splice` replaced by its raw JSON text."""
    text = json.dumps(body)
    for placeholder, raw in (splice or {}).items():
        text = text.replace(json.dumps(placeholder), raw)
    return text.encode()


def fields_of(body) -> dict:
    return dict(body) if isinstance(body, dict) else {}


def hand_written(operation, path_parameters: dict) -> list:
    """The cases every operation gets, whatever hypothesis draws."""
    cases = [
        operation.Case(path_parameters=path_parameters, query={"\x00": "x"}),
        operation.Case(path_parameters=path_parameters, query={"search": "a\x00b"}),
    ]
    if operation.method.upper() not in WRITES:
        return cases
    names = list(_body_properties(operation)) or ["name"]
    bodies = [
        nested(MAX_JSON_DEPTH + 1).encode(),
        nested(1_000, "mixed").encode(),
        nested(5_000, "object").encode(),
        json_text({names[0]: "@deep"}, splice={"@deep": nested(MAX_JSON_DEPTH + 1, "object")}),
        json_text({"\ud800": "x"}),
        json_text({"a\x00b": "x"}),
        json_text("\udfff"),
        json_text(["\ud800", {"\udc00": ["\x00"]}]),
        json_text({names[0]: ["\ud800"]}),
        json_text({names[0]: {"\udbff": "\x00"}}),
    ]
    # Each field alone: a whole body for a PATCH, so the value reaches the field's validation.
    for name in names:
        bodies += [json_text({name: "a\udfffb"}), json_text({name: "a\x00b"})]
    return cases + [
        operation.Case(path_parameters=path_parameters, body=body, media_type="application/json")
        for body in bodies
    ]


def _body_properties(operation) -> dict:
    """The top-level properties of the operation's request body (JSON's, else the first)."""
    raw = operation.schema.raw_schema
    content = (
        raw["paths"][operation.path][operation.method.lower()]
        .get("requestBody", {})
        .get("content", {})
    )
    for media_type in ("application/json", *content):
        schema = content.get(media_type, {}).get("schema")
        if schema:
            return _resolve(raw, schema).get("properties", {})
    return {}


def _resolve(raw: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = raw["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


HOSTILE_CHARACTER = st.one_of(st.sampled_from(SURROGATES), st.just("\x00"))
HOSTILE_TEXT = st.builds(
    lambda before, bad, after: before + bad + after,
    st.text(max_size=3),
    HOSTILE_CHARACTER,
    st.text(max_size=3),
)
NUL_TEXT = st.builds(
    lambda before, after: before + "\x00" + after, st.text(max_size=3), st.text(max_size=3)
)
DEEP = st.builds(
    nested,
    st.integers(MAX_JSON_DEPTH + 1, 3_000),
    st.sampled_from(["list", "object", "mixed"]),
)


@st.composite
def spliced(draw, case, writes: bool):
    """`case` (generated by schemathesis) with one hostile part drawn into it."""
    kinds = ["query name", "query value"]
    if writes:
        kinds = ["deep field", "deep body", "bad value", "bad key", "bad nested value"]
    kind = draw(st.sampled_from(kinds))
    if kind == "query name":
        case.query = {**(case.query or {}), draw(NUL_TEXT): draw(st.text(max_size=5))}
        return case
    if kind == "query value":
        names = sorted(case.query or {}) or ["search"]
        case.query = {**(case.query or {}), draw(st.sampled_from(names)): draw(NUL_TEXT)}
        return case
    body = fields_of(case.body)
    name = draw(st.sampled_from(sorted(body))) if body else "name"
    if kind == "deep field":
        payload = json_text({**body, name: "@deep"}, splice={"@deep": draw(DEEP)})
    elif kind == "deep body":
        payload = draw(DEEP).encode()
    elif kind == "bad value":
        payload = json_text({**body, name: draw(HOSTILE_TEXT)})
    elif kind == "bad key":
        payload = json_text({**body, draw(HOSTILE_TEXT): body.get(name, "x")})
    else:
        payload = json_text({**body, name: [draw(HOSTILE_TEXT), {draw(HOSTILE_TEXT): 1}]})
    case.body = payload
    case.media_type = "application/json"
    return case


# --- The run -------------------------------------------------------------------------------------


UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def path_parameters_for(operation, seeded: dict) -> dict:
    """The operation's path parameters: seeded ids where there are some, else an id of
    nothing (deletions get only those: they would remove the objects the other operations
    need, and read no body)."""
    found = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        value = seeded.get(name) if name != "id" else seeded.get(operation.path.split("/")[3])
        deletes = operation.method.upper() == "DELETE"
        found[name] = UNKNOWN_ID if value is None or deletes else value
    return found


@pytest.mark.postgres
def test_no_operation_answers_5xx_to_deep_json_lone_surrogates_or_nuls(
    postgres_only, transactional_db, capsys
):
    # Committed rows (transactional_db): each WSGI call ends with Django closing its
    # connection, which a test transaction would not survive.
    raw = factories.api_key(ApiKey.Scope.WRITE, name="fuzz")[1]
    headers = {"Authorization": f"Bearer {raw}"}
    seeded = factories.one_of_each(instance_name="Fuzz")
    started = time.monotonic()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletions last, so the other operations still find what was seeded.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    counts = {"hand-written": 0, "generated": 0, "statuses": {}}

    def send(case):
        response = case.call(headers=headers)
        counts["statuses"][response.status_code] = (
            counts["statuses"].get(response.status_code, 0) + 1
        )
        case.validate_response(response, checks=[not_a_server_error], headers=headers)

    for operation in operations:
        path_parameters = path_parameters_for(operation, seeded)
        for case in hand_written(operation, path_parameters):
            counts["hand-written"] += 1
            send(case)
        writes = operation.method.upper() in WRITES

        @settings(
            max_examples=GENERATED_WRITES if writes else GENERATED_READS,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(path_parameters=path_parameters).flatmap(
                lambda case, writes=writes: spliced(case, writes)
            )
        )
        def generated(case):
            counts["generated"] += 1
            send(case)

        generated()

    elapsed = time.monotonic() - started
    licence = [op for op in operations if op.path.startswith("/api/v1/licenses/")]
    with capsys.disabled():
        print(
            f"\nfuzz: {len(operations)} operations ({len(licence)} licence), "
            f"{counts['hand-written']} hand-written and {counts['generated']} generated cases, "
            f"statuses {dict(sorted(counts['statuses'].items()))}, {elapsed:.1f}s"
        )
    assert len(operations) >= 35 and len(licence) == 3
    assert all(status < 500 for status in counts["statuses"])
    # The hostile bodies were read and refused, not answered 404 before the parser ran.
    assert counts["statuses"].get(400, 0) > 100 and counts["statuses"].get(422, 0) > 100
