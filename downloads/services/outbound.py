"""Outbound HTTP for webhooks: where an event may be sent and the one way it is posted.

Rules owned here: a destination is an https URL (http only with
DOWNLOADS_WEBHOOK_ALLOW_HTTP) without credentials, whose host is not `localhost` and resolves
only to public addresses (`address_allowed`; private ones only with
DOWNLOADS_WEBHOOK_ALLOW_PRIVATE), checked when an endpoint is saved and again before every
attempt (`check_destination`); an attempt connects to the addresses it checked, never to a
name resolved again, follows no redirect and uses no proxy; a refused destination is never
connected to, and its error says nothing about what listens there (`post`).
"""

import http.client
import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from functools import partial

from django.conf import settings


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would re-send the payload somewhere the merchant did not register.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class DestinationRefused(Exception):
    """A webhook URL that may not be delivered to: `message` for the merchant saving it,
    `detail` (the offending address, or what is wrong) for the delivery log."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.message = message
        self.detail = detail


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_allowed(address: str) -> bool:
    """True if `address` (an IP literal) is a public unicast address.

    Refused: loopback, private, link-local (169.254.0.0/16, fe80::/10), unique-local
    (fc00::/7), multicast, reserved, unspecified, shared (100.64.0.0/10) and every other
    non-global range, and IPv6 forms that embed such an IPv4 address (IPv4-mapped
    ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, 6to4, Teredo, NAT64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id: fe80::1%eth0
    except ValueError:
        return False
    # An IPv4-mapped address is the IPv4 address it maps (Python 3.11 calls the whole
    # ::ffff:0:0/96 private, so judge what is embedded instead).
    candidates = [ip.ipv4_mapped] if ip.version == 6 and ip.ipv4_mapped else [ip]
    if ip.version == 6:
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64 and IPv4-compatible keep it in 32 bits
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates += [address for address in embedded if address is not None]
    return not any(
        candidate.is_private
        or candidate.is_loopback
        or candidate.is_link_local
        or candidate.is_multicast
        or candidate.is_reserved
        or candidate.is_unspecified
        or not candidate.is_global
        for candidate in candidates
    )


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_destination(url: str) -> tuple[str, int, list[str] | None]:
    """(host, port, addresses to connect to) for a webhook URL, or DestinationRefused.

    The URL must be https (http with DOWNLOADS_WEBHOOK_ALLOW_HTTP) and carry no user name or
    password; its host must not be `localhost` or `*.localhost` and must resolve, and every
    address it resolves to must be public (`address_allowed`). With
    DOWNLOADS_WEBHOOK_ALLOW_PRIVATE the host is not resolved here at all (addresses is None:
    the connection resolves it as usual)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused("Enter a valid http or https URL.", "invalid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused("Only http and https URLs are delivered to.", "not http(s)")
    if scheme == "http" and not settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP:
        raise DestinationRefused("Webhook URLs must use https.", "plain http")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise DestinationRefused(
            "The URL must not contain a user name or password.", "credentials in the URL"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DestinationRefused("The URL has no host.", "no host")
    port = port or (443 if scheme == "https" else 80)
    if settings.DOWNLOADS_WEBHOOK_ALLOW_PRIVATE:
        return host, port, None
    if host == "localhost" or host.endswith(".localhost"):
        raise DestinationRefused(
            "Webhooks are not sent to localhost; use a public https URL.", host
        )
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        addresses = []
    if not addresses:
        raise DestinationRefused(
            f"The host {host} does not resolve to an address.", "host does not resolve"
        )
    for address in addresses:
        if not address_allowed(address):
            where = address if address == host else f"{host} resolves to {address}, which"
            raise DestinationRefused(
                f"{where} is not a public address: webhooks are sent only to public addresses.",
                address,
            )
    return host, port, addresses


def _pinned_connection(connection_class, addresses: list[str], host, **kwargs):
    """An http.client connection to `host` that connects to the checked `addresses` instead of
    resolving the name again. TLS still uses `host` for SNI and the certificate check (the
    HTTPS connection wraps the socket with server_hostname=host), and the Host header too.
    It swaps http.client's `_create_connection` hook (the one it calls in `connect()`, kept
    for this kind of use since Python 3.4); the pinning tests fail if that ever changes."""
    connection = connection_class(host, **kwargs)

    def create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
        error: OSError | None = None
        for ip in addresses:  # like socket.create_connection: each address in turn
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    connection._create_connection = create_connection
    return connection


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, addresses: list[str]):
        super().__init__()
        self.addresses = addresses

    def http_open(self, req):
        return self.do_open(
            partial(_pinned_connection, http.client.HTTPConnection, self.addresses), req
        )


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, addresses: list[str]):
        super().__init__()
        self.addresses = addresses

    def https_open(self, req):
        connection = partial(_pinned_connection, http.client.HTTPSConnection, self.addresses)
        return self.do_open(connection, req, context=self._context)


def _pinned_opener(addresses: list[str]) -> urllib.request.OpenerDirector:
    # No proxy from the environment: a proxy would resolve the name itself, after our check.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _NoRedirects,
        _PinnedHTTPHandler(addresses),
        _PinnedHTTPSHandler(addresses),
    )


def post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int | None, str]:
    """POST and return (status code or None, error text). Never raises for network trouble.

    The destination is checked first (`check_destination`); a refused one is not connected
    to, and its error names only the address or the rule, whatever is listening there."""
    try:
        _host, _port, addresses = check_destination(url)
    except DestinationRefused as exc:
        return None, f"destination not allowed: {exc.detail}"
    opener = _opener if addresses is None else _pinned_opener(addresses)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)[:500] or exc.__class__.__name__
