"""The site's URLs: admin, buyer pages, the download endpoint, the storefront JSON and the API."""

from django.contrib import admin
from django.urls import include, path

from downloads.views import checkout, shopify, store

urlpatterns = [
    path("", store.home, name="home"),
    path("admin/", admin.site.urls),
    path("account/", include("accounts.urls")),
    path("downloads/", include("downloads.urls")),
    path("buy/<uuid:item_id>/", checkout.buy, name="buy"),
    path("channels/stripe/webhooks", checkout.stripe_webhook, name="stripe_webhook"),
    path("channels/shopify/webhooks", shopify.webhook, name="shopify_webhook"),
    path("api/v2/", include("downloads.api.storefront")),
    path("api/", include("downloads.api.urls")),
]

# JSON errors under /api/, Django's pages elsewhere.
handler400 = "downloads.api.exceptions.handler400"
handler403 = "downloads.api.exceptions.handler403"
handler404 = "downloads.api.exceptions.handler404"
handler500 = "downloads.api.exceptions.handler500"
