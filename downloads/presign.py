"""Presigned S3 download URLs at the cost of their signature.

`generate_presigned_url` resolves the endpoint, serializes the operation and runs botocore's
event machinery on every call: 0.17 ms here, as much as a whole bare request. What changes
between two download URLs is only the key, the response headers asked for, an optional
`Range`, the time and the expiry. So each process asks botocore once for a real presigned
URL (`UrlSigner.for_client`), keeps what it says about the endpoint (scheme, host, the path
before the key) and the signing scope (region, service), and then builds each URL's
canonical request the way botocore's `S3SigV4QueryAuth` does, signing it with that class's
own HMAC-SHA256 (`_sign`). The signing key `signature()` derives from the secret with four
of a URL's five HMACs is the same all day for one secret and scope, so it is kept
(`_signing_key`, the derivation step for step as botocore writes it); no crypto is written
here.

The parity test (`tests/downloads/test_presign.py`) proves the URLs are byte for byte the
ones `generate_presigned_url` makes for the same inputs and time, for keys with spaces,
non-ASCII and reserved characters, with and without a range, a content type, HEAD, and
temporary credentials; the S3 tests prove a checking server accepts them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from hashlib import sha256
from urllib.parse import parse_qs, quote, urlsplit

from botocore.auth import S3SigV4QueryAuth, _host_from_url
from botocore.compat import get_current_datetime

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
TEMPLATE_KEY = "k"
# What botocore's percent_encode keeps unquoted in query values, and in a key's path.
QUERY_SAFE = "-_.~"
PATH_SAFE = "/~"


# A pure function of the value, and most values repeat (the scope, a file's disposition and
# type): percent-encoding was most of a URL's cost.
@functools.lru_cache(maxsize=4096)
def _query(value: str) -> str:
    return quote(value, safe=QUERY_SAFE)


@functools.lru_cache(maxsize=4096)
def _path(key: str) -> str:
    return quote(key, safe=PATH_SAFE)


# botocore's signer, for its HMAC-SHA256 only (`_sign` reads nothing of the instance).
_HMAC = S3SigV4QueryAuth(None, "s3", "")._sign


@functools.lru_cache(maxsize=16)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """SigV4's signing key for a secret, a day (YYYYMMDD) and a scope: the first four steps
    of botocore's `SigV4Auth.signature`, kept because they are the same for every URL signed
    that day (a new day, region or secret, rotated temporary credentials among them, derives
    a new one). AWS's SigV4 documentation suggests keeping it so."""
    k_date = _HMAC(f"AWS4{secret_key}".encode(), day)
    k_region = _HMAC(k_date, region)
    k_service = _HMAC(k_region, service)
    return _HMAC(k_service, "aws4_request")


@dataclass(frozen=True)
class UrlSigner:
    """Signs GET and HEAD object URLs for one client and bucket (one per process)."""

    client: object
    base: str  # scheme://host[:port]/<path before the key>
    host: str  # the Host header value botocore signs
    path_prefix: str  # the URL path before the key
    region: str
    service: str

    @classmethod
    def for_client(cls, client, bucket: str) -> UrlSigner:
        """Learn the endpoint and scope from one URL botocore presigns for `bucket`."""
        template = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": TEMPLATE_KEY}, ExpiresIn=60
        )
        parts = urlsplit(template)
        if not parts.path.endswith("/" + TEMPLATE_KEY):
            raise ValueError(f"Unexpected presigned URL shape: {parts.path!r}")
        prefix = parts.path[: -len(TEMPLATE_KEY)]
        scope = parse_qs(parts.query)["X-Amz-Credential"][0].split("/")
        return cls(
            client=client,
            base=f"{parts.scheme}://{parts.netloc}{prefix}",
            host=_host_from_url(template),
            path_prefix=prefix,
            region=scope[2],
            service=scope[3],
        )

    def url(
        self,
        key: str,
        *,
        expires: int,
        disposition: str | None = None,
        content_type: str | None = None,
        byte_range: str | None = None,
        method: str = "GET",
    ) -> str:
        """The presigned URL for `key`, valid `expires` seconds from now.

        `disposition` and `content_type` become the response-content-* overrides S3 applies;
        `byte_range` is signed as the `Range` header the request must send.
        """
        # The credentials botocore would sign with (refreshed if they are temporary ones).
        credentials = self.client._request_signer._credentials.get_frozen_credentials()
        timestamp = get_current_datetime().strftime(SIGV4_TIMESTAMP)
        scope = f"{timestamp[:8]}/{self.region}/{self.service}/aws4_request"
        quoted_key = _path(key)
        path = self.path_prefix + quoted_key

        # Operation parameters first, in the order botocore serializes them, then the auth
        # parameters: the URL's query, as botocore writes it.
        operation = []
        if disposition is not None:
            operation.append(("response-content-disposition", disposition))
        if content_type is not None:
            operation.append(("response-content-type", content_type))
        signed_headers = "host;range" if byte_range is not None else "host"
        auth = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
            ("X-Amz-Date", timestamp),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", signed_headers),
        ]
        if credentials.token is not None:
            auth.append(("X-Amz-Security-Token", credentials.token))
        encoded = [(name, _query(value)) for name, value in operation + auth]
        query = "&".join(f"{name}={value}" for name, value in encoded)

        # The canonical request: the query sorted by name, the signed headers, an unsigned
        # payload (SigV4Auth.canonical_request for S3's query auth).
        canonical_query = "&".join(f"{name}={value}" for name, value in sorted(encoded))
        headers = f"host:{self.host}\n"
        if byte_range is not None:
            headers += f"range:{' '.join(byte_range.split())}\n"
        canonical = "\n".join(
            [method, path, canonical_query, headers, signed_headers, "UNSIGNED-PAYLOAD"]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                timestamp,
                scope,
                sha256(canonical.encode("utf-8")).hexdigest(),
            ]
        )
        # SigV4Auth.signature's last step, with the day's signing key.
        key = _signing_key(credentials.secret_key, timestamp[:8], self.region, self.service)
        signature = _HMAC(key, string_to_sign, hex=True)
        return f"{self.base}{quoted_key}?{query}&X-Amz-Signature={signature}"
