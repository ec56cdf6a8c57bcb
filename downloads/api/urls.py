"""The merchant REST API under /api/v1/, with its OpenAPI schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from .views.catalogue import DownloadViewSet, ProductViewSet, VariantViewSet
from .views.customers import CustomerViewSet
from .views.grants import EventViewSet, GrantViewSet
from .views.licences import LicenseInstanceViewSet, LicenseKeyInstanceViewSet, LicenseKeyViewSet
from .views.media import MediaViewSet, media_upload_content
from .views.orders import OrderViewSet
from .views.versions import BackfillViewSet, DownloadBackfillViewSet, DownloadVersionViewSet
from .views.webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet

app_name = "api"

router = SimpleRouter(trailing_slash=False)
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

urlpatterns = [
    path("v1/licenses/", include("downloads.api.licenses")),  # public: Lemon Squeezy's shape
    path(
        "v1/media/uploads/<str:upload_id>/content",
        media_upload_content,
        name="media-upload-content",
    ),
    path("v1/", include(router.urls)),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api:schema", authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="docs",
    ),
]
