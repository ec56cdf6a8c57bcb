"""The merchant REST API under /api/v1/, with its OpenAPI schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from . import views, webhooks

app_name = "api"

router = SimpleRouter(trailing_slash=False)
router.register("products", views.ProductViewSet, basename="product")
router.register("variants", views.VariantViewSet, basename="variant")
router.register("media", views.MediaViewSet, basename="media")
router.register("downloads", views.DownloadViewSet, basename="download")
router.register("orders", views.OrderViewSet, basename="order")
router.register("grants", views.GrantViewSet, basename="grant")
router.register("events", views.EventViewSet, basename="event")
router.register("customers", views.CustomerViewSet, basename="customer")
# After the sale (issue 7): webhooks, a download's versions and backfills.
router.register("webhook_endpoints", webhooks.WebhookEndpointViewSet, basename="webhook_endpoint")
router.register("webhook_deliveries", webhooks.WebhookDeliveryViewSet, basename="webhook_delivery")
router.register("backfills", webhooks.BackfillViewSet, basename="backfill")
router.register(
    r"downloads/(?P<download_id>[^/]+)/versions",
    webhooks.DownloadVersionViewSet,
    basename="download_version",
)
router.register(
    r"downloads/(?P<download_id>[^/]+)/backfills",
    webhooks.DownloadBackfillViewSet,
    basename="download_backfill",
)

urlpatterns = [
    path(
        "v1/media/uploads/<str:upload_id>/content",
        views.media_upload_content,
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
