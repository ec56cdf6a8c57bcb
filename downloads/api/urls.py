"""The merchant REST API under /api/v1/, with its OpenAPI schema and docs."""

urlpatterns: list = []
