"""API key secrets: generation, hashing and constant-time verification.

A raw key reads `dd_<prefix>_<secret>`. The prefix (48 bits) finds the row; the secret
(256 bits from `secrets`) is stored only as its SHA-256, which is enough for a random
secret of that size (there is nothing to brute-force, unlike a password).
"""

import hashlib
import hmac
import secrets

KEY_MARKER = "dd"


def generate_key() -> tuple[str, str, str]:
    """Return (raw key, prefix, hashed secret) for a new API key."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_MARKER}_{prefix}_{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    """Return (prefix, secret) of a well-formed raw key, or None."""
    if not raw or len(raw) > 200:
        return None
    marker, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if marker != KEY_MARKER or len(prefix) != 12 or not secret:
        return None
    return prefix, secret


def secret_matches(secret: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), hashed)
