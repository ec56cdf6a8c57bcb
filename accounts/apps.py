from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The signal receivers import models, which is possible only once the registry is ready.
        from . import signals  # noqa: F401
