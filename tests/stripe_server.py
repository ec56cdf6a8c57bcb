"""A small Stripe-shaped API on 127.0.0.1, and Stripe's events, signed as Stripe signs them.

The store talks to it through the real `stripe` library (settings.STRIPE_API_BASE points
here), so the tests see exactly what the library sends: the form-encoded body with Stripe's
bracketed keys (`line_items[0][price_data][unit_amount]`), the `Authorization: Bearer sk_…`
header and the `Idempotency-Key`. Only what the store uses is implemented:

- `POST /v1/checkout/sessions` answers a `checkout.session` object (line items not
  expanded), as Stripe's API reference shows it; a repeated `Idempotency-Key` gets the first
  answer again, as Stripe does;
- `GET /pay/<session id>` stands for the hosted payment page the buyer is sent to.

`fail(status, …)` makes the API answer Stripe's error envelope
(`{"error": {"type", "message", …}}`) until `recover()`. The event builders follow Stripe's
documented Event, Checkout Session, Charge and Dispute objects; `signature_header` computes
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` by hand, not
through the library the store verifies with.
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

API_VERSION = "2026-10-28.endive"


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


# --- Stripe's form encoding -------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def decode_form(body: str) -> dict:
    """Stripe's form encoding back to nested data: `a[0][b]=1&c[d]=2` → {"a": [{"b": "1"}],
    "c": {"d": "2"}}. Values stay strings, as on the wire."""
    data: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        _put(data, parts, value)
    return _lists(data)


def _put(node: dict, parts: list[str], value: str) -> None:
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _lists(node):
    """Dicts whose keys are all 0..n-1 become lists (Stripe encodes arrays as indexes)."""
    if not isinstance(node, dict):
        return node
    node = {key: _lists(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


# --- The API ----------------------------------------------------------------------------------


class StripeServer:
    """The Stripe-shaped API. `requests` records each request as {method, path, headers,
    form}; `sessions` holds the Checkout Sessions made, by id."""

    def __init__(self):
        self.secret_key = _id("sk")
        self.webhook_secret = f"whsec_{secrets.token_hex(16)}"
        self.requests: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self._by_idempotency_key: dict[str, tuple[int, dict]] = {}
        self._failure: tuple[int, dict] | None = None
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> "StripeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # Scripted failures

    def fail(
        self,
        status: int = 500,
        *,
        type: str = "api_error",
        message: str = "An unknown error occurred.",
        code: str | None = None,
    ) -> None:
        """Answer every API request with Stripe's error envelope and `status` until recover()."""
        error = {"type": type, "message": message}
        if code:
            error["code"] = code
        self._failure = (status, {"error": error})

    def recover(self) -> None:
        self._failure = None

    # What the store asked for

    def session_creates(self) -> list[dict]:
        """The decoded forms of every `POST /v1/checkout/sessions`, in order."""
        return [
            r["form"]
            for r in self.requests
            if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions"
        ]

    # Answers

    def _answer(self, method: str, path: str, headers: dict, form: dict) -> tuple[int, dict]:
        if headers.get("Authorization") != f"Bearer {self.secret_key}":
            return 401, {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Invalid API Key provided.",
                }
            }
        if self._failure is not None:
            return self._failure
        if method == "POST" and path == "/v1/checkout/sessions":
            key = headers.get("Idempotency-Key")
            with self._lock:
                if key and key in self._by_idempotency_key:
                    return self._by_idempotency_key[key]
                answer = self._session_create(form)
                if key:
                    self._by_idempotency_key[key] = answer
            return answer
        match = re.fullmatch(r"/v1/checkout/sessions/([^/]+)", path)
        if method == "GET" and match and match[1] in self.sessions:
            return 200, self.sessions[match[1]]
        return 404, {
            "error": {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}).",
            }
        }

    def _session_create(self, form: dict) -> tuple[int, dict]:
        for required in ("mode", "success_url", "line_items"):
            if not form.get(required):
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "parameter_missing",
                        "message": f"Missing required param: {required}.",
                        "param": required,
                    }
                }
        items = form["line_items"]
        currencies = {item["price_data"]["currency"] for item in items}
        if len(currencies) != 1:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "message": "All line items must share one currency.",
                    "param": "line_items",
                }
            }
        subtotal = sum(
            int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)) for item in items
        )
        session_id = _id("cs")
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currencies.pop(),
            "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": form.get("customer_email"),
            "expires_at": now + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": form.get("metadata", {}),
            "mode": form["mode"],
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_details": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": form["success_url"],
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.url}/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return 200, session

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                path, _, query = self.path.partition("?")
                form = decode_form(body if self.command == "POST" else query)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "headers": dict(self.headers),
                        "form": form,
                    }
                )
                if self.command == "GET" and path.startswith("/pay/"):
                    page = b"<!doctype html><title>Stripe Checkout (test)</title><h1>Pay</h1>"
                    self._send(200, page, "text/html; charset=utf-8")
                    return
                status, data = server._answer(self.command, path, dict(self.headers), form)
                self._send(status, json.dumps(data).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", _id("req"))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


# --- Events, as Stripe sends them -------------------------------------------------------------


def event(event_type: str, obj: dict, *, previous_attributes: dict | None = None) -> dict:
    """A snapshot Event (`object: "event"`) carrying `obj` in `data.object`."""
    data = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": _id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def completed_session(
    session: dict,
    *,
    email: str = "paid@example.com",
    tax: int = 0,
    payment_status: str = "paid",
    payment_intent: str | None = None,
    name: str = "Ada Buyer",
) -> dict:
    """The Checkout Session `session` (as the API made it) after the buyer paid at Checkout:
    complete, with the details the buyer typed and the tax charged on top."""
    return {
        **session,
        "status": "complete",
        "payment_status": payment_status,
        "payment_intent": payment_intent or _id("pi"),
        "amount_total": session["amount_subtotal"] + tax,
        "customer_details": {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "94107",
                "state": None,
            },
            "email": email,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": tax},
    }


def charge(
    *,
    payment_intent: str,
    amount: int,
    amount_refunded: int = 0,
    currency: str = "usd",
    refunded: bool | None = None,
) -> dict:
    """A Charge of `payment_intent`; `refunded` is true once `amount_refunded` reaches
    `amount`, as Stripe reports it."""
    return {
        "id": _id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": _id("txn"),
        "billing_details": {"email": None, "name": None, "phone": None, "address": None},
        "captured": True,
        "created": int(time.time()),
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": False,
        "livemode": False,
        "metadata": {},
        "outcome": {"network_status": "approved_by_network", "type": "authorized"},
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": _id("pm"),
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
        "receipt_email": None,
        "refunded": amount_refunded >= amount if refunded is None else refunded,
        "status": "succeeded",
    }


def dispute(*, payment_intent: str, amount: int, currency: str = "usd") -> dict:
    """A Dispute (chargeback) opened on the charge of `payment_intent`."""
    return {
        "id": _id("du"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": _id("ch"),
        "created": int(time.time()),
        "currency": currency,
        "evidence_details": {
            "due_by": int(time.time()) + 14 * 24 * 3600,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": "needs_response",
    }


def signature_header(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """`Stripe-Signature` for `body`, computed as Stripe documents it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def encode(evt: dict) -> bytes:
    """An event's raw body, as Stripe sends it (pretty-printed JSON)."""
    return json.dumps(evt, indent=2).encode()
