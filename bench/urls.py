"""The project's URLs plus the baseline view, for the benchmark's servers only."""

from django.urls import path

from downloads_project.urls import urlpatterns as project_urlpatterns

from . import views

BASELINE_PATH = "bench/baseline"

urlpatterns = [
    path(BASELINE_PATH, views.BaselineView.as_view(), name="bench-baseline"),
    path("bench/storefront-reads", views.storefront_reads),
    path("bench/download-without-presign/<str:token>/", views.download_without_presign),
    path("bench/order-page-reads/<str:access_token>/", views.order_page_reads),
    path("bench/license-reads", views.license_reads),
    path("bench/license-validate-without-answer", views.LicenseValidateWithoutAnswer.as_view()),
]
urlpatterns += project_urlpatterns
