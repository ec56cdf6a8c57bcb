"""Settings for the digital-downloads store: one module, driven by environment variables.

With no configuration at all it runs on SQLite (`var/db.sqlite3`), keeps files private under
`var/media` and prints email to the console. Production switches each part by environment
variable; see README.md ("Configuration"). Every variable is read through `env` (django-environ)
below, and every setting the code reads has its default here: code says `settings.X`.
"""

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import environ
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from django.core.exceptions import ImproperlyConfigured


class Env(environ.Env):
    """django-environ's reader, with the rules this project keeps for every variable.

    - An empty variable counts as unset: `DJANGO_SECURE_COOKIES=` keeps the default.
    - A value is taken as written: django-environ alone would read `$NAME` as the value of the
      variable NAME (and a secret key or password may start with `$`).
    - A value that does not parse stops the start with ImproperlyConfigured naming the
      variable. Booleans are 1/0, true/false, yes/no, on/off (also y/n, ok); anything else is
      refused. Lists are comma-separated, with spaces around items and empty items dropped.
    - URLs (`db_url`, `cache_url`, `email_url`) are parsed by django-environ; an unknown scheme
      or a bad port names the variable too, never echoing the URL (it may hold a password).
      `smtps://` is TLS from the first byte (RFC 8314), like `smtp+ssl://`; django-environ
      alone reads it as STARTTLS, which is `smtp+tls://` (or `submission://`) here.
    """

    BOOLEAN_FALSE_STRINGS = ("false", "off", "no", "n", "0")
    EMAIL_SCHEMES = {
        **environ.Env.EMAIL_SCHEMES,
        "submission": environ.Env.EMAIL_SCHEMES["smtp+tls"],
    }
    _KINDS = {int: "an integer", bool: "a boolean (1 or 0, true or false, yes or no, on or off)"}

    @classmethod
    def parse_value(cls, value, cast):
        words = cls.BOOLEAN_TRUE_STRINGS + cls.BOOLEAN_FALSE_STRINGS
        if cast is bool and isinstance(value, str) and value.strip().lower() not in words:
            raise ValueError(f"not a boolean: {value!r}")
        return super().parse_value(value, cast)

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        value = self.ENVIRON.get(var, "")
        if not value.strip():
            if default is self.NOTSET:
                raise ImproperlyConfigured(f"Set the {var} environment variable.")
            if not parse_default or default is None:
                return default
            value = default
        if cast is None and default is not None and default is not self.NOTSET:
            cast = type(default)
        try:
            return self.parse_value(value, cast)
        except (ValueError, TypeError) as exc:
            if cast in self._KINDS:
                message = f"{var} must be {self._KINDS[cast]}, got {value!r}."
            else:
                message = f"{var} cannot be read: {exc}"
            raise ImproperlyConfigured(message) from exc

    def list(self, var, cast=None, default=environ.Env.NOTSET):
        return [item for item in super().list(var, cast or str.strip, default) if item != ""]

    @contextmanager
    def _reading_url(self, var):
        try:
            yield
        except ImproperlyConfigured as exc:
            if var in str(exc):
                raise
            raise ImproperlyConfigured(f"{var} cannot be read: {exc}") from exc
        except (ValueError, KeyError) as exc:
            raise ImproperlyConfigured(f"{var} cannot be read: {exc}") from exc

    def db_url(self, var="DATABASE_URL", default=environ.Env.NOTSET, engine=None):
        with self._reading_url(var):
            url = self.str(var, default=default)
            scheme = urlparse(url).scheme
            if engine is None and scheme not in self.DB_SCHEMES:
                raise ImproperlyConfigured(
                    f"{var} has the unknown scheme {scheme!r}: use postgres://user:pass@host:5432/db"
                    " or sqlite:////absolute/path.sqlite3."
                )
            return self.db_url_config(url, engine=engine)

    def cache_url(self, var="CACHE_URL", default=environ.Env.NOTSET, backend=None):
        with self._reading_url(var):
            return super().cache_url(var, default, backend)

    def email_url(self, var="EMAIL_URL", default=environ.Env.NOTSET, backend=None):
        with self._reading_url(var):
            return super().email_url(var, default, backend)

    @classmethod
    def email_url_config(cls, url, backend=None):
        config = super().email_url_config(url, backend)
        scheme = (url if isinstance(url, cls.URL_CLASS) else urlparse(url)).scheme
        if scheme == "smtps":
            config.pop("EMAIL_USE_TLS", None)
            config["EMAIL_USE_SSL"] = True
        elif scheme == "submission":
            config["EMAIL_USE_TLS"] = True
        return config


env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.str("DOWNLOADS_VAR_DIR", default=str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# pytest sets PYTEST_VERSION before settings load; the test suite runs with dev defaults.
TESTING = "PYTEST_VERSION" in os.environ
# Development: DEBUG, the test suite, or DOWNLOADS_DEV=1 (production-like without a secret).
DEV = DEBUG or TESTING or env.bool("DOWNLOADS_DEV", default=False)
_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEV:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value in production, "
            "or set DJANGO_DEBUG=1 for local development."
        )
    SECRET_KEY = _DEV_SECRET_KEY
elif not DEV and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 random characters.")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[]) or (
    ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEV else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "accounts",
    "downloads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "downloads_project.urls"
WSGI_APPLICATION = "downloads_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# DATABASE_URL=postgres://user:pass@host:5432/db switches to PostgreSQL. Connections are kept
# (a new PostgreSQL connection costs 11-15 ms here, a query 0.1-0.3 ms).

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
# A kept connection is checked before a request reuses it (a server restart is not an error).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel apart from the SQL text, so psycopg can prepare a statement it has run
    # 5 times on a connection and PostgreSQL stops parsing and planning it again: planning was
    # 0.3-0.4 ms of a 0.1 ms storefront query. DATABASE_PREPARED_STATEMENTS=0 turns preparing
    # off for a pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
    # Options given in the URL (`?sslmode=require`) are kept beside these.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": (
            5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None
        ),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers and a writer work at once; the timeout rides out short write locks.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Identity ---------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:order_list"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- Downloads (the store's rules) ------------------------------------------------------------

DOWNLOADS_URL_TTL = min(max(env.int("DOWNLOADS_URL_TTL", default=60), 1), 3600)
DOWNLOADS_DEFAULT_LIMIT = max(env.int("DOWNLOADS_DEFAULT_LIMIT", default=10), 0)
DOWNLOADS_DEFAULT_EXPIRY_DAYS = max(env.int("DOWNLOADS_DEFAULT_EXPIRY_DAYS", default=0), 0)
# The free resume (README.md "Download"): a Range request not starting at byte 0 takes no
# download for DOWNLOADS_RESUME_WINDOW seconds after a counted one (0: never free), while the
# bytes served since that count stay within DOWNLOADS_RESUME_BUDGET times the file's size.
DOWNLOADS_RESUME_WINDOW = env.int("DOWNLOADS_RESUME_WINDOW", default=6 * 3600)
if not 0 <= DOWNLOADS_RESUME_WINDOW <= 7 * 86400:
    raise ImproperlyConfigured(
        f"DOWNLOADS_RESUME_WINDOW must be 0 to 604800 seconds, got {DOWNLOADS_RESUME_WINDOW}."
    )
DOWNLOADS_RESUME_BUDGET = env.float("DOWNLOADS_RESUME_BUDGET", default=2.0)
if not 1.0 <= DOWNLOADS_RESUME_BUDGET <= 10.0:
    raise ImproperlyConfigured(
        "DOWNLOADS_RESUME_BUDGET must be 1 to 10 (times the file size), "
        f"got {DOWNLOADS_RESUME_BUDGET}."
    )
DOWNLOADS_MAX_UPLOAD_SIZE = env.int("DOWNLOADS_MAX_UPLOAD_SIZE", default=5 * 1024**3)
DOWNLOADS_STORE_NAME = env.str("DOWNLOADS_STORE_NAME", default="Digital Downloads")
# Absolute links in emails and the storefront JSON; falls back to the request's host.
DOWNLOADS_SITE_URL = env.str("DOWNLOADS_SITE_URL", default="").rstrip("/")
# After the sale (issue 7): backfills and webhooks; see README.md ("Webhooks").
DOWNLOADS_BACKFILL_BATCH_SIZE = max(env.int("DOWNLOADS_BACKFILL_BATCH_SIZE", default=500), 1)
DOWNLOADS_WEBHOOK_TIMEOUT = max(env.int("DOWNLOADS_WEBHOOK_TIMEOUT", default=10), 1)
DOWNLOADS_WEBHOOK_RETRY_BASE = max(env.int("DOWNLOADS_WEBHOOK_RETRY_BASE", default=30), 0)
DOWNLOADS_WEBHOOK_GIVE_UP_AFTER = max(env.int("DOWNLOADS_WEBHOOK_GIVE_UP_AFTER", default=86400), 0)
DOWNLOADS_WEBHOOK_CACHE_SECONDS = max(env.int("DOWNLOADS_WEBHOOK_CACHE_SECONDS", default=30), 0)
# Endpoints must be https and resolve to public addresses; these loosen that for tests and
# closed networks (README.md "Configuration").
DOWNLOADS_WEBHOOK_ALLOW_HTTP = env.bool("DOWNLOADS_WEBHOOK_ALLOW_HTTP", default=False)
DOWNLOADS_WEBHOOK_ALLOW_PRIVATE = env.bool("DOWNLOADS_WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Money and sales channels (README.md "Selling") --------------------------------------------
# Amounts are integers in minor units of an ISO 4217 currency, formatted for people by Babel
# in DOWNLOADS_LOCALE.
DOWNLOADS_CURRENCY = env.str("DOWNLOADS_CURRENCY", default="USD").upper()
DOWNLOADS_LOCALE = env.str("DOWNLOADS_LOCALE", default="en_US")
if DOWNLOADS_CURRENCY not in list_currencies():
    raise ImproperlyConfigured(
        f"DOWNLOADS_CURRENCY must be an ISO 4217 code such as USD or EUR, got {DOWNLOADS_CURRENCY!r}."
    )
try:
    Locale.parse(DOWNLOADS_LOCALE)
except (ValueError, UnknownLocaleError) as exc:
    raise ImproperlyConfigured(
        f"DOWNLOADS_LOCALE must be a locale such as en_US or de_DE, got {DOWNLOADS_LOCALE!r}."
    ) from exc
# Shopify: the webhook signing secret shown under Settings → Notifications → Webhooks (unset:
# the Shopify endpoint answers 404); the shop's myshopify.com domain, checked when set.
SHOPIFY_WEBHOOK_SECRET = env.str("SHOPIFY_WEBHOOK_SECRET", default="")
SHOPIFY_SHOP_DOMAIN = env.str("SHOPIFY_SHOP_DOMAIN", default="")
# Stripe Checkout: the secret API key and the webhook endpoint's signing secret (whsec_...).
# STRIPE_API_BASE points the stripe library elsewhere (the tests' local Stripe-shaped server).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")

# --- Files ------------------------------------------------------------------------------------
# Without AWS_STORAGE_BUCKET_NAME, media lives under var/media and is never served at a public
# URL: buyers get it only through /downloads/<grant token>/. With a bucket, media is private on
# S3 (or any S3-compatible store) and buyers get short-lived presigned URLs.

MEDIA_ROOT = Path(env.str("DOWNLOADS_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = None
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")


def s3_storage_options(bucket: str) -> dict:
    """The django-storages S3 options for private objects, from the environment."""
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(max_concurrency=2)
    transfer.max_in_memory_upload_chunks = (
        2  # s3transfer's knob; boto3 does not take it as an argument
    )
    endpoint = env.str("AWS_S3_ENDPOINT_URL", default=None)
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        # None: boto3's own chain (its environment variables, ~/.aws, the instance role).
        "region_name": env.str("AWS_S3_REGION_NAME", default=None),
        "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
        "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
        # No custom domain: django-storages makes unsigned URLs on one (without a CloudFront
        # signer), and buyers' links must be presigned. AWS_S3_CUSTOM_DOMAIN is refused below.
        "custom_domain": None,
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": DOWNLOADS_URL_TTL,
        # boto3 still signs SigV2 by default; SigV4 is what every region accepts.
        "signature_version": "s3v4",
        "file_overwrite": False,
        "addressing_style": env.str(
            "AWS_S3_ADDRESSING_STYLE", default="path" if endpoint else None
        ),
        "object_parameters": {"CacheControl": "private, max-age=0"},
        # Uploads from an open file hold each 8 MiB part in memory until it is sent; boto3's
        # default of 10 parts in flight made a 200 MiB upload cost ~150 MiB of RAM.
        "transfer_config": transfer,
    }


if env.str("AWS_S3_CUSTOM_DOMAIN", default=""):
    raise ImproperlyConfigured(
        "AWS_S3_CUSTOM_DOMAIN is not supported: buyers get presigned links, which must use the "
        "bucket's own endpoint (AWS_S3_ENDPOINT_URL for an S3-compatible store)."
    )
if AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": s3_storage_options(AWS_STORAGE_BUCKET_NAME),
    }
else:
    DEFAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None, "directory_permissions_mode": 0o750},
    }
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEV
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# In development and tests whitenoise serves straight from the apps' static folders.
WHITENOISE_USE_FINDERS = DEV
FILE_UPLOAD_PERMISSIONS = 0o640
# Uploads beyond this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- CORS (storefront JSON only) --------------------------------------------------------------

CORS_ALLOWED_ORIGINS = env.list("DOWNLOADS_CORS_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/v2/.*$"
CORS_ALLOW_METHODS = ("GET", "OPTIONS")

# --- REST API ---------------------------------------------------------------------------------

# Requests per API key (per staff user, or per IP before authentication) and period.
# Empty counts as unset (the default); surrounding spaces are dropped; anything else than
# N/<period> with a period DRF reads (s, sec, second, m, min, minute, h, hour, d, day) stops
# the start, naming the variable.
DOWNLOADS_API_THROTTLE = env.str("DOWNLOADS_API_THROTTLE", default="60/min").strip()
if not re.fullmatch(
    r"[0-9]{1,9}/(s|sec|second|m|min|minute|h|hour|d|day)s?", DOWNLOADS_API_THROTTLE
):
    raise ImproperlyConfigured(
        "DOWNLOADS_API_THROTTLE must be N/sec, N/min, N/hour or N/day, "
        f"got {DOWNLOADS_API_THROTTLE!r}."
    )
# Public licence API calls (activate, validate, deactivate) per client address and period: a
# seller's app checks its key on every start, a key guesser is stopped long before it gets far.
DOWNLOADS_LICENSE_THROTTLE = env.str("DOWNLOADS_LICENSE_THROTTLE", default="60/min")
if not re.fullmatch(r"\d+/[smhd][a-z]*", DOWNLOADS_LICENSE_THROTTLE):
    raise ImproperlyConfigured(
        "DOWNLOADS_LICENSE_THROTTLE must be N/sec, N/min, N/hour or N/day, "
        f"got {DOWNLOADS_LICENSE_THROTTLE!r}."
    )
# Direct uploads (presigned S3 POST, or the app's signed upload URL) stay open this long.
DOWNLOADS_UPLOAD_URL_TTL = min(
    max(env.int("DOWNLOADS_UPLOAD_URL_TTL", default=3600), 60), 7 * 86400
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.authentication.IsMerchant"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        # JSON bounded in size and depth, no lone surrogates (downloads/api/parsers.py).
        "downloads.api.parsers.LimitedJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "downloads.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "downloads.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Callers not yet identified are throttled by address: trust X-Forwarded-For only as far
    # as the proxies in front of the app (0: use REMOTE_ADDR; a client cannot spoof it).
    "NUM_PROXIES": env.int("DOWNLOADS_NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Digital Downloads API",
    "DESCRIPTION": (
        "Merchant REST API of the digital-downloads store. Authenticate with "
        "`Authorization: Bearer <api key>` (`manage.py create_api_key`). Lists answer "
        '`{"object": "list", "pagination": {...}, "data": [...]}`; errors answer '
        '`{"http_status", "code", "message", "validation_errors": [...]}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["downloads.api.schema.merchant_api_only"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Enums stay inline where they are used (every resource has its own `object` constant).
    "POSTPROCESSING_HOOKS": [],
}

# --- Background tasks (django-tasks, database backend from django-tasks-db) -------------------
# Workers: `manage.py db_worker` (django-tasks-db). The task table keeps its app label
# (django_tasks_database) from when the backend was part of django-tasks.

TASKS = {
    "default": {
        "BACKEND": env.str("DOWNLOADS_TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
    }
}
if TASKS["default"]["BACKEND"] == "django_tasks.backends.database.DatabaseBackend":
    raise ImproperlyConfigured(
        "DOWNLOADS_TASKS_BACKEND: the database backend moved to django_tasks_db.DatabaseBackend"
        " (package django-tasks-db); unset the variable to use it."
    )

# --- Cache (API throttling, the webhook subscription memo) -----------------------------------
# Per process by default; with more than one app server, a shared one (Redis):
# DJANGO_CACHE_BACKEND=django.core.cache.backends.redis.RedisCache
# DJANGO_CACHE_LOCATION=redis://127.0.0.1:6379/0. (A single cache URL would be read the same way
# as the database's and the email's: env.cache_url(NAME, default="locmemcache://downloads").)

CACHES = {
    "default": {
        "BACKEND": env.str(
            "DJANGO_CACHE_BACKEND", default="django.core.cache.backends.locmem.LocMemCache"
        ),
        "LOCATION": env.str("DJANGO_CACHE_LOCATION", default="downloads"),
    }
}

# --- Email ------------------------------------------------------------------------------------

# EMAIL_URL=smtp://user:pass@host:587 (smtp+tls:// STARTTLS, smtps:// TLS from the first byte;
# user and password percent-encoded); without it, EMAIL_BACKEND (the console by default).

if env.str("EMAIL_URL", default=""):
    _email = env.email_url("EMAIL_URL")
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
    EMAIL_PORT = _email["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
    EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Digital Downloads <store@localhost>")

# --- Security ---------------------------------------------------------------------------------

SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEV:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO").upper()
if not isinstance(logging.getLevelName(LOG_LEVEL), int):
    raise ImproperlyConfigured(
        f"DJANGO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Both announce routine work at INFO (a line per Stripe API call, pikepdf's start).
        "stripe": {"level": "WARNING"},
        "pikepdf": {"level": "WARNING"},
    },
}
