"""Rate limiting per API key (per staff user with Basic or session auth, per IP before a
caller is known), at DOWNLOADS_API_THROTTLE ("60/min" by default).

The counts live in Django's cache: per process with the default local-memory cache, shared
when DJANGO_CACHE_BACKEND points at Redis (needed with more than one app server)."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

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
