from django.apps import AppConfig


class DownloadsConfig(AppConfig):
    name = "downloads"
    verbose_name = "Store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Signal receivers: webhook subscription cache invalidation, the retry of
        # PostgreSQL statements a migration made stale, and the removal of a stamped copy's
        # stored file with its row. Imported here, not at the top: models
        # can be imported only once the app registry is ready.
        from . import checks, db  # noqa: F401
        from .services import stamping, webhooks  # noqa: F401

        # The deploy checks register on import; `migrate` makes the database cache's table.
        checks.connect(self)
