"""Fixtures of the domain tests: a product sold to orders of every kind, and a webhook
receiver. `paid_order` is in tests/conftest.py (the account pages use it too)."""

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from downloads.services import outbound, webhooks
from downloads.services.orders import LineInput, order_cancel, order_create, order_refund
from tests import factories


@pytest.fixture(autouse=True)
def _webhooks_to_local_receivers(settings):
    """The suite's webhook receivers listen on http://127.0.0.1 and its example hosts do not
    resolve offline: allow both here; the tests of those rules turn the settings off."""
    settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = True
    settings.DOWNLOADS_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def strict_webhooks(settings):
    """The production rules for webhook destinations: https only, public addresses only."""
    settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = False
    settings.DOWNLOADS_WEBHOOK_ALLOW_PRIVATE = False


class FakeDns:
    """Stands in for DNS: `names[host]` is the list of addresses a name resolves to (changed
    at will, e.g. between saving an endpoint and delivering to it); IP literals resolve to
    themselves and any other name does not resolve. `lookups` lists the names asked for."""

    def __init__(self, real):
        self.names: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        self._real = real

    def getaddrinfo(self, host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host.split("%", 1)[0] if isinstance(host, str) else "")
        except ValueError:
            pass
        else:
            return self._real(host, port, *args, **kwargs)
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in self.names[host]
        ]


@pytest.fixture
def fake_dns(monkeypatch):
    """A FakeDns in place of socket.getaddrinfo (as outbound.socket sees it)."""
    dns = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(outbound.socket, "getaddrinfo", dns.getaddrinfo)
    return dns


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
