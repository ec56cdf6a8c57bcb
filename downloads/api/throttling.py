"""Rate limiting per API key (per staff user with Basic or session auth, per IP before a
caller is known), at DOWNLOADS_API_THROTTLE ("60/min" by default).

The counts live in Django's cache: per process with the default local-memory cache, shared
when DJANGO_CACHE_BACKEND points at Redis (needed with more than one app server)."""

from django.conf import settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from accounts.models import ApiKey

_DRF_IDENT = BaseThrottle()


class _Addressed:
    """What DRF's `BaseThrottle.get_ident` reads of a request, X-Forwarded-For and
    REMOTE_ADDR, taken from META: `request.headers` would first build a dict of every header
    of the request (a third of the licence throttle's cost)."""

    __slots__ = ("META", "headers")

    def __init__(self, meta):
        self.META = meta
        forwarded = meta.get("HTTP_X_FORWARDED_FOR")
        self.headers = {} if forwarded is None else {"x-forwarded-for": forwarded}


def _ident(request):
    return _DRF_IDENT.get_ident(_Addressed(request.META))


def client_address(request) -> str | None:
    """The client's address, as every limit and log here takes it: DRF's throttles' rule,
    X-Forwarded-For trusted only as far as DOWNLOADS_NUM_PROXIES proxies (0: REMOTE_ADDR),
    so a forged header gives no fresh count and no false log entry. None when unknown.
    The throttles below, the login lockout (it is AXES_CLIENT_IP_CALLABLE) and the download log ask
    it."""
    return _ident(request) or None


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_ident(self, request):
        return _ident(request)

    def get_rate(self) -> str:
        # Read at each request (not frozen at import like DRF's THROTTLE_RATES), so tests
        # and deployments can change it through settings.
        return settings.DOWNLOADS_API_THROTTLE

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        if self.rate is not None:
            # Read by the view for the X-RateLimit-* headers of this response.
            request.rate_limit = (self.num_requests, max(self.num_requests - len(self.history), 0))
        return allowed


def rate_limit_headers(request) -> dict[str, str]:
    """`X-RateLimit-Limit` / `-Remaining` for a request the throttle has counted."""
    state = getattr(request, "rate_limit", None)
    if state is None:
        return {}
    limit, remaining = state
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}


class LicenseRateThrottle(SimpleRateThrottle):
    """The public licence API's limit: DOWNLOADS_LICENSE_THROTTLE ("60/min") per client
    address (X-Forwarded-For as far as DOWNLOADS_NUM_PROXIES trusts it), for its three
    endpoints together, so a guesser of keys is stopped long before it gets anywhere.

    A fixed window: one counter per address and period, raised by the cache's atomic `incr`
    (a single operation a request, atomic across processes on Redis, and of constant size
    whatever the rate, unlike the history of timestamps DRF's own throttles keep). Refused
    requests count too. The cache only: no SQL, unless the cache itself is the database.
    """

    scope = "license"

    def get_ident(self, request):
        return _ident(request)

    def get_rate(self) -> str:
        # Read at each request, like ApiKeyRateThrottle's.
        return settings.DOWNLOADS_LICENSE_THROTTLE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"ip:{self.get_ident(request)}"}

    def allow_request(self, request, view) -> bool:
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counter = f"{self.get_cache_key(request, view)}:{window}"
        try:
            count = self.cache.incr(counter)
        except ValueError:  # the window's first request (or its counter was evicted)
            if self.cache.add(counter, 1, timeout=self.duration + 1):
                count = 1
            else:  # another process added it in between
                count = self.cache.incr(counter)
        # Read by the licence views for the X-RateLimit-* headers of this response.
        request.rate_limit = (self.num_requests, max(self.num_requests - count, 0))
        return count <= self.num_requests

    def wait(self) -> float:
        """Seconds until the window ends (Retry-After)."""
        return max(self.window_ends - self.now, 1)
