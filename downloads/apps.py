from django.apps import AppConfig


class DownloadsConfig(AppConfig):
    name = "downloads"
    verbose_name = "Store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Signal receivers: webhook subscription cache invalidation, and the retry of
        # PostgreSQL statements a migration made stale. Imported here, not at the top: models
        # can be imported only once the app registry is ready.
        from . import db  # noqa: F401
        from .services import webhooks  # noqa: F401
