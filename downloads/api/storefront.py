"""The storefront JSON (no auth), in Fileflare's customer-account-orders shape."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
