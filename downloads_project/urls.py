"""The site's URLs: admin, buyer pages, the download endpoint, the storefront JSON and the API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("account/", include("accounts.urls")),
    path("downloads/", include("downloads.urls")),
    path("api/v2/", include("downloads.api.storefront")),
    path("api/", include("downloads.api.urls")),
]
