"""Settings for the digital-downloads store: one module, driven by environment variables.

With no configuration at all it runs on SQLite (`var/db.sqlite3`), keeps files private under
`var/media` and prints email to the console. Production switches each part by environment
variable; see README.md ("Configuration").
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DOWNLOADS_VAR_DIR", BASE_DIR / "var"))

# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", default=False)
# pytest sets PYTEST_VERSION before settings load; the test suite runs with dev defaults.
TESTING = "PYTEST_VERSION" in os.environ
# Development: DEBUG, the test suite, or DOWNLOADS_DEV=1 (production-like without a secret).
DEV = DEBUG or TESTING or env_bool("DOWNLOADS_DEV", default=False)
_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEV:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value in production, "
            "or set DJANGO_DEBUG=1 for local development."
        )
    SECRET_KEY = _DEV_SECRET_KEY
elif not DEV and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 random characters.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or (
    ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEV else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

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
    "django_tasks.backends.database",
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

ROOT_URLCONF = os.environ.get("DOWNLOADS_URLCONF", "downloads_project.urls")
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

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel apart from the SQL text, so psycopg can prepare a statement it has run
    # 5 times on a connection and PostgreSQL stops parsing and planning it again: planning was
    # 0.3-0.4 ms of a 0.1 ms storefront query. DATABASE_PREPARED_STATEMENTS=0 turns preparing
    # off for a pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": 5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None,
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

# --- Files ------------------------------------------------------------------------------------
# Without AWS_STORAGE_BUCKET_NAME, media lives under var/media and is never served at a public
# URL: buyers get it only through /downloads/<grant token>/. With a bucket, media is private on
# S3 (or any S3-compatible store) and buyers get short-lived presigned URLs.

MEDIA_ROOT = Path(os.environ.get("DOWNLOADS_MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = None
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")


def s3_storage_options(bucket: str) -> dict:
    """The django-storages S3 options for private objects, from the environment."""
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(max_concurrency=2)
    transfer.max_in_memory_upload_chunks = (
        2  # s3transfer's knob; boto3 does not take it as an argument
    )
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL") or None
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
        "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
        "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
        "custom_domain": os.environ.get("AWS_S3_CUSTOM_DOMAIN") or None,
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": env_int("DOWNLOADS_URL_TTL", 60),
        # boto3 still signs SigV2 by default; SigV4 is what every region accepts.
        "signature_version": "s3v4",
        "file_overwrite": False,
        "addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE")
        or ("path" if endpoint else None),
        "object_parameters": {"CacheControl": "private, max-age=0"},
        # Uploads from an open file hold each 8 MiB part in memory until it is sent; boto3's
        # default of 10 parts in flight made a 200 MiB upload cost ~150 MiB of RAM.
        "transfer_config": transfer,
    }


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

# --- Downloads (the store's rules) ------------------------------------------------------------

DOWNLOADS_URL_TTL = min(max(env_int("DOWNLOADS_URL_TTL", 60), 1), 3600)
DOWNLOADS_DEFAULT_LIMIT = max(env_int("DOWNLOADS_DEFAULT_LIMIT", 10), 0)
DOWNLOADS_DEFAULT_EXPIRY_DAYS = max(env_int("DOWNLOADS_DEFAULT_EXPIRY_DAYS", 0), 0)
DOWNLOADS_MAX_UPLOAD_SIZE = env_int("DOWNLOADS_MAX_UPLOAD_SIZE", 5 * 1024**3)
DOWNLOADS_STORE_NAME = os.environ.get("DOWNLOADS_STORE_NAME", "Digital Downloads")
# Absolute links in emails and the storefront JSON; falls back to the request's host.
DOWNLOADS_SITE_URL = os.environ.get("DOWNLOADS_SITE_URL", "").rstrip("/")
# After the sale (issue 7): backfills and webhooks; see README.md ("Webhooks").
DOWNLOADS_BACKFILL_BATCH_SIZE = max(env_int("DOWNLOADS_BACKFILL_BATCH_SIZE", 500), 1)
DOWNLOADS_WEBHOOK_TIMEOUT = max(env_int("DOWNLOADS_WEBHOOK_TIMEOUT", 10), 1)
DOWNLOADS_WEBHOOK_RETRY_BASE = max(env_int("DOWNLOADS_WEBHOOK_RETRY_BASE", 30), 0)
DOWNLOADS_WEBHOOK_GIVE_UP_AFTER = max(env_int("DOWNLOADS_WEBHOOK_GIVE_UP_AFTER", 86400), 0)
DOWNLOADS_WEBHOOK_CACHE_SECONDS = max(env_int("DOWNLOADS_WEBHOOK_CACHE_SECONDS", 30), 0)

# --- CORS (storefront JSON only) --------------------------------------------------------------

CORS_ALLOWED_ORIGINS = env_list("DOWNLOADS_CORS_ORIGINS")
CORS_URLS_REGEX = r"^/api/v2/.*$"
CORS_ALLOW_METHODS = ("GET", "OPTIONS")

# --- REST API ---------------------------------------------------------------------------------

# Requests per API key (per staff user, or per IP before authentication) and period.
DOWNLOADS_API_THROTTLE = os.environ.get("DOWNLOADS_API_THROTTLE", "60/min")
# Direct uploads (presigned S3 POST, or the app's signed upload URL) stay open this long.
DOWNLOADS_UPLOAD_URL_TTL = min(max(env_int("DOWNLOADS_UPLOAD_URL_TTL", 3600), 60), 7 * 86400)

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
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "downloads.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "downloads.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Callers not yet identified are throttled by address: trust X-Forwarded-For only as far
    # as the proxies in front of the app (0: use REMOTE_ADDR; a client cannot spoof it).
    "NUM_PROXIES": env_int("DOWNLOADS_NUM_PROXIES", 0),
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

# --- Background tasks (django-tasks, database backend) ----------------------------------------

TASKS = {
    "default": {
        "BACKEND": os.environ.get(
            "DOWNLOADS_TASKS_BACKEND", "django_tasks.backends.database.DatabaseBackend"
        ),
    }
}

# --- Cache (throttling); set CACHE_URL-like Redis in multi-server deployments -----------------

CACHES = {
    "default": {
        "BACKEND": os.environ.get(
            "DJANGO_CACHE_BACKEND", "django.core.cache.backends.locmem.LocMemCache"
        ),
        "LOCATION": os.environ.get("DJANGO_CACHE_LOCATION", "downloads"),
    }
}

# --- Email ------------------------------------------------------------------------------------

if os.environ.get("EMAIL_URL"):
    from urllib.parse import unquote, urlsplit

    _email = urlsplit(os.environ["EMAIL_URL"])
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or 25
    EMAIL_HOST_USER = unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = unquote(_email.password or "")
    EMAIL_USE_TLS = _email.scheme in {"smtp+tls", "submission"}
    EMAIL_USE_SSL = _email.scheme == "smtps"
else:
    EMAIL_BACKEND = os.environ.get(
        "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
    )
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Digital Downloads <store@localhost>")

# --- Security ---------------------------------------------------------------------------------

SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEV:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
