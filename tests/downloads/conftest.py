"""Fixtures of the domain tests: a product sold to orders of every kind, and a webhook
receiver. `paid_order` is in tests/conftest.py (the account pages use it too)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from downloads.services import webhooks
from downloads.services.orders import LineInput, order_cancel, order_create, order_refund
from tests import factories


@pytest.fixture
def store(paid_order):
    """A product sold to: 5 paid orders (one with two lines), one refunded, one with its only
    line refunded (so refunded), one pending, one cancelled, and one order of another product."""
    product = factories.ProductFactory(download_limit=3)
    factories.DownloadFactory(product=product)  # the file sold at the time
    eligible = [paid_order(product) for _ in range(4)]
    eligible.append(paid_order(product, product))
    refunded = order_refund(order=paid_order(product))
    partly = paid_order(product, product)
    order_refund(order=partly, line_ids=[partly.lines.first().pk])
    pending = order_create(email="p@example.com", lines=[LineInput(product=product)])
    cancelled = order_cancel(
        order=order_create(email="c@example.com", lines=[LineInput(product=product)])
    )
    other = paid_order(factories.ProductFactory())
    added_later = factories.DownloadFactory(product=product)
    return {
        "product": product,
        "eligible": eligible,
        "partly": partly,
        "excluded": [refunded, pending, cancelled, other],
        "download": added_later,
    }


class Receiver:
    """A merchant's webhook receiver on 127.0.0.1 that answers with the scripted statuses
    (then 200) and, like a real one, processes each Webhook-Id once."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.processed: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if 200 <= status < 300:
                    delivery_id = self.headers[webhooks.ID_HEADER]
                    if delivery_id not in receiver.processed:  # the idempotency key
                        receiver.processed[delivery_id] = 0
                    receiver.processed[delivery_id] += 1 if delivery_id else 0
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self):
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver():
    """receiver(statuses=()) starts a Receiver; all are shut down after the test."""
    made = []

    def start(statuses=()):
        server = Receiver(statuses)
        server.thread.start()
        made.append(server)
        return server

    yield start
    for server in made:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=5)
