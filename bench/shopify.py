"""The Shopify ingest measurement's deliveries: distinct signed `orders/paid` webhooks.

Every request wrk sends is a new delivery of a new order (its own webhook id, order id,
number, token and line item ids) signed as Shopify signs it, base64(HMAC-SHA256(secret, raw
body)), so each one takes the endpoint's whole path: verify, parse, store once, enqueue.
The body is the test suite's orders/paid fixture (tests/fixtures/shopify/orders-paid.json,
about 5 KB, written from Shopify's documented fields) with those ids made distinct; wrk's
Lua builds each body from one template and takes its precomputed signature from a table.

No project imports: the runner uses this module before any Django is set up.
"""

import base64
import hashlib
import hmac
import json

from .infra import ROOT

SECRET = "bench-shopify-webhook-secret"  # noqa: S105 - the bench servers' own, not a secret
SHOP = "bench-press.myshopify.com"
PATH = "/channels/shopify/webhooks"
FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "orders-paid.json"
# The products the fixture's line items name (Shopify's product and variant ids).
PRODUCTS = [
    {"name": "Bench Shopify guide", "external_id": 632910392, "variant_external_id": 808950810,
     "sku": "GUIDE-PDF", "files": 1},
    {"name": "Bench Shopify course", "external_id": 921728736, "variant_external_id": None,
     "sku": "COURSE-VIDEO", "files": 2},
]  # fmt: skip
SLOT = "@N@"  # replaced by the delivery's 7-digit number


def template() -> str:
    """The fixture as one JSON text whose ids contain SLOT (replaced by digits, it stays
    valid JSON with distinct integer ids)."""
    data = json.loads(FIXTURE.read_text())
    marks = {
        "id": f"5{SLOT}",
        "order_number": f"9{SLOT}",
    }
    data["id"] = "__id__"
    data["order_number"] = "__order_number__"
    data["name"] = f"#9{SLOT}"
    data["token"] = f"b1946ac92492d2347c6235b4{SLOT}0"  # 32 characters, like Shopify's
    for position, item in enumerate(data["line_items"], 1):
        item["id"] = f"__line_{position}__"
        marks[f"line_{position}"] = f"8{SLOT}{position}"
    text = json.dumps(data, separators=(",", ":"))
    for key, value in marks.items():
        text = text.replace(f'"__{key}__"', value)
    assert SLOT in text and text.isascii()
    return text


def number(n: int) -> str:
    return f"{n:07d}"


def body(text: str, n: int) -> bytes:
    return text.replace(SLOT, number(n)).encode()


def signature(payload: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()).decode()


def wrk_script(*, start: int, count: int) -> str:
    """A wrk Lua script that POSTs deliveries start+1 … start+count, one a request."""
    text = template()
    if "]==]" in text:
        raise ValueError("the template cannot be a Lua long string")
    signatures = ",\n".join(f'"{signature(body(text, start + i))}"' for i in range(1, count + 1))
    return (
        f"local template = [==[{text}]==]\n"
        f"local signatures = {{\n{signatures}\n}}\n"
        f"local start = {start}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #signatures + 1\n"
        '  local n = string.format("%07d", start + i)\n'
        f'  local payload = template:gsub("{SLOT}", n)\n'
        "  local headers = {\n"
        '    ["Content-Type"] = "application/json",\n'
        '    ["X-Shopify-Topic"] = "orders/paid",\n'
        '    ["X-Shopify-Hmac-Sha256"] = signatures[i],\n'
        f'    ["X-Shopify-Shop-Domain"] = "{SHOP}",\n'
        '    ["X-Shopify-Webhook-Id"] = "bench-" .. n,\n'
        "  }\n"
        f'  return wrk.format("POST", "{PATH}", headers, payload)\n'
        "end\n"
    )
