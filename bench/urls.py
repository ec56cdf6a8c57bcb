"""The project's URLs plus the baseline view, for the benchmark's servers only."""

from django.urls import path

from downloads_project.urls import urlpatterns as project_urlpatterns

from .views import BaselineView

BASELINE_PATH = "bench/baseline"

urlpatterns = [path(BASELINE_PATH, BaselineView.as_view(), name="bench-baseline")]
urlpatterns += project_urlpatterns
