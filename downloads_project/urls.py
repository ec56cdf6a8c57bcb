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

# JSON errors under /api/, Django's pages elsewhere.
handler400 = "downloads.api.exceptions.handler400"
handler403 = "downloads.api.exceptions.handler403"
handler404 = "downloads.api.exceptions.handler404"
handler500 = "downloads.api.exceptions.handler500"
