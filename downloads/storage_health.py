"""Whether the default storage (S3) can be reached: one answer per process, kept in memory.

A download must not be counted when the store its 302 points to is down, and it must not pay
a network round trip to find out: `available()` is a memory read. The answer is kept fresh
in the background and by the app's own storage traffic:

- a probe thread (a daemon, one per process) asks the store for its bucket (`HEAD`, short
  timeouts, no retries) every DOWNLOADS_STORAGE_PROBE_SECONDS while downloads are being
  served, and for as long as the store is down; it stops after a minute without downloads
  and starts again with the next one. A probe that gets an answer marks the store up again.
- any storage operation of the app that fails to reach the store (a connection error or a
  timeout, or a 5xx after boto3's retries: uploads, stamping reads, size checks) marks it
  down at once (`mark_down`, called by downloads/storage.py).

Local storage is never probed: its faults show on the request that meets them (a missing or
unreadable file answers 503 where it is opened). DOWNLOADS_STORAGE_PROBE_SECONDS=0 turns the
signal off (every download is attempted).

Rules owned here: which faults mean "unreachable" (`is_unreachable`); how long a client is
asked to wait (`retry_after`).
"""

import logging
import math
import os
import threading
import time

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.signals import setting_changed

logger = logging.getLogger(__name__)

# A probe gives up after this long: a store that takes longer to answer a HEAD is down for a
# buyer too. No retries (the next probe is the retry).
PROBE_TIMEOUT = 2.0
# The probe thread stops after this many seconds without a download (and at least this many
# probes), unless the store is down.
IDLE_SECONDS = 60.0
IDLE_PROBES = 12
# A probe answered with these codes found no bucket: every presigned URL would be a 404, so
# the store counts as down. Any other 4xx is an answer (a 403 on HeadBucket is common, from a
# policy without s3:ListBucket, while presigned GETs work): up.
_BUCKET_GONE = {"404", "NoSuchBucket", "NotFound"}

_lock = threading.Lock()
_up = True
_reason = ""
_wanted_at = 0.0  # time.monotonic() of the last download that asked
_prober: threading.Thread | None = None
_wake = threading.Event()  # set to end the current prober's wait (reset, a new generation)
_generation = 0


def probe_seconds() -> float:
    """Seconds between probes; 0 means the signal is off."""
    return settings.DOWNLOADS_STORAGE_PROBE_SECONDS


def retry_after() -> int:
    """Seconds a client is asked to wait (`Retry-After`) when the store is unreachable: two
    probes, at least 5 seconds."""
    return max(5, math.ceil(2 * probe_seconds()))


def _tracked() -> bool:
    return bool(probe_seconds()) and hasattr(default_storage, "bucket_name")


def available() -> bool:
    """The hot path's question: may a download be sent to the store? A memory read; it also
    keeps the probe running (starting it if it stopped). Always True on local storage and
    with the signal off."""
    global _wanted_at
    if not _tracked():
        return True
    _wanted_at = time.monotonic()
    if _prober is None:
        _start_prober()
    return _up


def is_up() -> bool:
    """The current answer, without asking for probes (for tests and the log)."""
    return _up


def probing() -> bool:
    """Whether this process's probe thread is running."""
    return _prober is not None


def mark_down(reason: str) -> None:
    """A storage operation could not reach the store: every download answers 503 from now
    until a probe reaches it again (the probe starts if it is not running)."""
    if _tracked():
        _set(_generation, up=False, reason=reason)
        if _prober is None:
            _start_prober()


def _set(generation: int, *, up: bool, reason: str = "") -> None:
    # The answer of the storage of `generation` (an older one's probe changes nothing).
    global _up, _reason
    with _lock:
        if generation != _generation:
            return
        was_up, _up, _reason = _up, up, reason
    if was_up and not up:
        logger.warning("Storage unreachable, downloads paused: %s", reason)
    elif up and not was_up:
        logger.warning("Storage reachable again, downloads resumed")


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from) says the S3 store could not be
    reached: no connection, a timeout, a broken response, or a 5xx after boto3's retries.
    A 4xx is an answer (a missing key, a refused signature): the store is up."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return True
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def probe() -> str | None:
    """Ask the store once, now (HEAD of the bucket): None when it answered, else why not.
    Runs on the probe thread; a network call, never on a request's path."""
    store = default_storage._wrapped if hasattr(default_storage, "bucket_name") else None
    if store is None:
        return None
    try:
        _probe_client(store).head_bucket(Bucket=store.bucket_name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        # A bucket that is gone sends every buyer to a 404: as good as down.
        return f"probe: {exc}" if code in _BUCKET_GONE or is_unreachable(exc) else None
    except Exception as exc:  # botocore raises many kinds (network, credentials)
        if is_unreachable(exc):
            return f"probe: {exc}"
        # Not a fault of the store (no credentials, a bad configuration): presigning fails
        # the same way and answers 503 by itself.
        logger.debug("Storage probe could not ask: %s", exc)
    return None


_clients: dict = {}


def _probe_client(store):
    """A boto3 client of the storage's own session and endpoint, with short timeouts and no
    retries, built once per storage (django-storages' own client waits 60 s and retries)."""
    key = id(store)
    client = _clients.get(key)
    if client is None:
        config = store.client_config.merge(
            Config(
                connect_timeout=PROBE_TIMEOUT,
                read_timeout=PROBE_TIMEOUT,
                retries={"total_max_attempts": 1},
            )
        )
        # The storage's own session (its credentials or profile), as django-storages builds it.
        client = store._create_session().client(
            "s3",
            region_name=store.region_name,
            use_ssl=store.use_ssl,
            endpoint_url=store.endpoint_url,
            config=config,
            verify=store.verify,
        )
        _clients.clear()  # one storage per process (tests switch them)
        _clients[key] = client
    return client


def _start_prober() -> None:
    global _prober
    with _lock:
        if _prober is not None:
            return
        _wake.clear()
        _prober = threading.Thread(
            target=_probe_loop, args=(_generation,), name="storage-probe", daemon=True
        )
        _prober.start()


def _probe_loop(generation: int) -> None:
    global _prober
    try:
        while True:
            interval = probe_seconds()
            with _lock:
                idle = time.monotonic() - _wanted_at > max(IDLE_SECONDS, IDLE_PROBES * interval)
                if generation != _generation or not _tracked() or (_up and idle):
                    return
            reason = probe()
            _set(generation, up=reason is None, reason=reason or "")
            if _wake.wait(interval):
                return
    finally:
        with _lock:
            if generation == _generation:
                _prober = None


def reset() -> None:
    """Forget the answer and stop the probe (the storage changed): up until told otherwise."""
    global _up, _reason, _prober, _generation
    with _lock:
        _generation += 1
        _up, _reason, _prober = True, "", None
        _wake.set()
    _clients.clear()


def _reset_when_storage_changes(*, setting, **kwargs):
    if setting in ("STORAGES", "DOWNLOADS_STORAGE_PROBE_SECONDS"):
        reset()


def _after_fork() -> None:
    # A forked worker (gunicorn --preload) has no probe thread and may have inherited the
    # lock held by a thread that is gone: new ones, and a probe of its own when asked.
    global _lock, _wake, _prober, _generation, _up, _reason
    _lock, _wake = threading.Lock(), threading.Event()
    _prober, _generation, _up, _reason = None, _generation + 1, True, ""
    _clients.clear()


setting_changed.connect(_reset_when_storage_changes)
os.register_at_fork(after_in_child=_after_fork)
