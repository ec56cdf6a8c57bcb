"""The merchant REST API under /api/v1/, with its OpenAPI schema and docs.

Every route answers with or without a trailing slash (`/api/v1/products` and
`/api/v1/products/`, as DRF users write it), the same view either way: no redirect, which
would lose a POST's body. Anything else under /api/ is the API's JSON 404
(`route.not_found`), with DEBUG on too (Django's debug 404 page is HTML)."""

from django.urls import URLPattern, include, path, re_path
from django.urls.resolvers import RoutePattern
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from downloads.views.headers import DOCS_CONTENT_SECURITY_POLICY, page_headers

from . import licenses
from .exceptions import route_not_found
from .views.catalogue import DownloadViewSet, ProductViewSet, VariantViewSet
from .views.customers import CustomerViewSet
from .views.grants import EventViewSet, GrantViewSet
from .views.licences import LicenseInstanceViewSet, LicenseKeyInstanceViewSet, LicenseKeyViewSet
from .views.media import MediaViewSet, media_upload_content
from .views.orders import OrderViewSet
from .views.versions import BackfillViewSet, DownloadBackfillViewSet, DownloadVersionViewSet
from .views.webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet

app_name = "api"


class OptionalSlashRouter(SimpleRouter):
    """SimpleRouter whose routes match with or without the trailing slash (reversed
    without it, as the schema publishes them)."""

    def __init__(self):
        super().__init__(trailing_slash=False)
        self.trailing_slash = "/?"


def with_optional_slash(patterns: list) -> list:
    """`patterns` and, for each `path()` route without a trailing slash, its slashed twin
    (the same view, unnamed: reversing gives the unslashed form)."""
    twins = [
        path(f"{pattern.pattern}/", pattern.callback, pattern.default_args)
        for pattern in patterns
        if isinstance(pattern, URLPattern)
        and isinstance(pattern.pattern, RoutePattern)
        and not str(pattern.pattern).endswith("/")
    ]
    return [*patterns, *twins]


router = OptionalSlashRouter()
router.register("products", ProductViewSet, basename="product")
router.register("variants", VariantViewSet, basename="variant")
router.register("media", MediaViewSet, basename="media")
router.register("downloads", DownloadViewSet, basename="download")
router.register("orders", OrderViewSet, basename="order")
router.register("grants", GrantViewSet, basename="grant")
router.register("events", EventViewSet, basename="event")
router.register("customers", CustomerViewSet, basename="customer")
# After the sale: webhooks, a download's versions and backfills.
router.register("webhook_endpoints", WebhookEndpointViewSet, basename="webhook_endpoint")
router.register("webhook_deliveries", WebhookDeliveryViewSet, basename="webhook_delivery")
router.register("backfills", BackfillViewSet, basename="backfill")
router.register(
    r"downloads/(?P<download_id>[^/]+)/versions",
    DownloadVersionViewSet,
    basename="download_version",
)
router.register(
    r"downloads/(?P<download_id>[^/]+)/backfills",
    DownloadBackfillViewSet,
    basename="download_backfill",
)
# Licence keys (issued by payment): the keys and their instances (activations).
router.register("license_keys", LicenseKeyViewSet, basename="license_key")
router.register(
    r"license_keys/(?P<license_key_id>[^/]+)/instances",
    LicenseKeyInstanceViewSet,
    basename="license_key_instance",
)
router.register("license_instances", LicenseInstanceViewSet, basename="license_instance")

schema_view = SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny])
docs_view = page_headers(
    # The split view serves Swagger UI's init script from this URL (`?script=`) instead of
    # inline, so the page's policy allows scripts from our origin only.
    SpectacularSwaggerSplitView.as_view(
        url_name="api:schema", authentication_classes=[], permission_classes=[AllowAny]
    ),
    csp=DOCS_CONTENT_SECURITY_POLICY,
)

urlpatterns = [
    # Public, Lemon Squeezy's shape.
    path("v1/licenses/", include(with_optional_slash(licenses.urlpatterns))),
    re_path(
        r"^v1/media/uploads/(?P<upload_id>[^/]+)/content/?$",
        media_upload_content,
        name="media-upload-content",
    ),
    path("v1/", include(router.urls)),
    path("schema/", schema_view, name="schema"),
    path("schema", schema_view),
    path("docs/", docs_view, name="docs"),
    path("docs", docs_view),
    # Last: whatever did not match above.
    re_path(r"^", route_not_found, name="not-found"),
]
