"""What a deployment needs besides its settings: the deploy checks (`manage.py check
--deploy`) of mail and cache, and the database cache's table, made by `migrate`.

Rules owned here: production mail must reach people (settings.py refuses to start without it;
these checks say so to an operator running `check --deploy` with development settings or the
DOWNLOADS_ALLOW_CONSOLE_EMAIL opt-out); the throttle and memo counters must be shared by every
process; the database cache's table exists once `migrate` has run, with no step to remember.
"""

from django.conf import settings
from django.core import checks
from django.core.cache.backends.db import BaseDatabaseCache
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django.utils.module_loading import import_string

# Caches whose counts stay inside one process: N app-server workers would each keep their own.
_PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@checks.register(checks.Tags.security, deploy=True)
def check_mail_is_delivered(app_configs=None, **kwargs):
    """downloads.E001: mail goes to a backend that delivers nothing (the console prints
    password-reset links to the log); a warning (W001) with DOWNLOADS_ALLOW_CONSOLE_EMAIL."""
    backend = settings.EMAIL_BACKEND
    if backend not in settings.EMAIL_UNDELIVERED_BACKENDS:
        return []
    message = (
        f"EMAIL_URL is not set to a mail server: mail goes to {backend}, which delivers "
        "nothing; password-reset links (staff's too) and order emails never reach anyone."
    )
    hint = "Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587."
    if settings.DOWNLOADS_ALLOW_CONSOLE_EMAIL:
        return [checks.Warning(message, hint=hint, id="downloads.W001")]
    return [checks.Error(message, hint=hint, id="downloads.E001")]


@checks.register(checks.Tags.caches, deploy=True)
def check_cache_is_shared(app_configs=None, **kwargs):
    """downloads.W002: the default cache is per process, so every worker counts its own
    throttles (N workers allow N times each limit)."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend not in _PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"The default cache is {backend}: each process keeps its own throttle counts.",
            hint="Unset DJANGO_CACHE_BACKEND (the database cache) or set DJANGO_CACHE_URL "
            "(redis://host:6379/0).",
            id="downloads.W002",
        )
    ]


def create_cache_tables(sender, using, verbosity=1, **kwargs):
    """post_migrate: the tables of the database caches on the database just migrated
    (`createcachetable`, which leaves existing tables alone)."""
    backends = (import_string(config["BACKEND"]) for config in settings.CACHES.values())
    if any(issubclass(backend, BaseDatabaseCache) for backend in backends):
        call_command("createcachetable", database=using, verbosity=max(verbosity - 1, 0))


def connect(app_config) -> None:
    """Connect the post_migrate handler once, for `app_config`'s migrations (the signal is
    sent once per app; the table needs making once per run)."""
    post_migrate.connect(
        create_cache_tables, sender=app_config, dispatch_uid="downloads.create_cache_tables"
    )
