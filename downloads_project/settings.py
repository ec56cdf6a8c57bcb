"""Settings for the digital-downloads store: one module, driven by environment variables.

With no configuration at all it runs on SQLite (`var/db.sqlite3`), keeps files private under
`var/media` and prints email to the console. Production switches each part by environment
variable; see README.md ("Configuration"). Every variable is read through `env` (django-environ)
below, and every setting the code reads has its default here: code says `settings.X`.
"""

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from django.core.exceptions import ImproperlyConfigured

from downloads_project.environment import Env, env, in_range, throttle_rate  # noqa: F401

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
    # Login protection: failed logins, counted in its tables (accounts/lockout.py).
    "axes",
    "accounts",
    "downloads",
    # After downloads: Django takes a management command from the first app that has it, and
    # downloads' `db_worker` (django-tasks-db's worker with heartbeats and the recovery of
    # tasks whose worker died) must be the one that runs.
    "django_tasks_db",
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
    # The admin's and the browsable API's Content-Security-Policy (downloads/views/headers.py).
    "downloads.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes requires: turns a locked-out login page into the lockout page.
    "axes.middleware.AxesMiddleware",
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
    # Django's backend, its health check without a round trip (downloads/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "downloads.postgresql"
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

# Login protection (django-axes, README.md "Login protection"): every password login (admin,
# account page, API Basic) is refused, the right password too, for an account or an address
# with DOWNLOADS_LOGIN_FAILURE_LIMIT failures within the last DOWNLOADS_LOGIN_COOLOFF seconds.
# The rules and the callables named here are in accounts/lockout.py.
DOWNLOADS_LOGIN_FAILURE_LIMIT = in_range(
    "DOWNLOADS_LOGIN_FAILURE_LIMIT", env.int("DOWNLOADS_LOGIN_FAILURE_LIMIT", default=5), 1, 1000
)
DOWNLOADS_LOGIN_COOLOFF = in_range(
    "DOWNLOADS_LOGIN_COOLOFF",
    env.int("DOWNLOADS_LOGIN_COOLOFF", default=900),
    1,
    7 * 86400,
    " seconds",
)
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Counted in the database (shared by every process), by account and by address apart.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
# Read at each attempt, so the two settings above are the only knobs.
AXES_FAILURE_LIMIT = "accounts.lockout.failure_limit"
AXES_COOLOFF_TIME = "accounts.lockout.cool_off"
# Refused attempts do not count: a lockout ends DOWNLOADS_LOGIN_COOLOFF seconds after the
# failure that started it, however often it is tried meanwhile.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "accounts.lockout.attempted_email"
# The address every limit and log here takes (X-Forwarded-For only through trusted proxies).
AXES_CLIENT_IP_CALLABLE = "downloads.api.throttling.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out_response"
# Failures only: no row per successful login. No start-up banner on every command.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- Downloads (the store's rules) ------------------------------------------------------------

DOWNLOADS_URL_TTL = in_range(
    "DOWNLOADS_URL_TTL", env.int("DOWNLOADS_URL_TTL", default=60), 1, 3600, " seconds"
)
DOWNLOADS_DEFAULT_LIMIT = in_range(
    "DOWNLOADS_DEFAULT_LIMIT", env.int("DOWNLOADS_DEFAULT_LIMIT", default=10), 0
)
DOWNLOADS_DEFAULT_EXPIRY_DAYS = in_range(
    "DOWNLOADS_DEFAULT_EXPIRY_DAYS", env.int("DOWNLOADS_DEFAULT_EXPIRY_DAYS", default=0), 0
)
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
DOWNLOADS_MAX_UPLOAD_SIZE = in_range(
    "DOWNLOADS_MAX_UPLOAD_SIZE",
    env.int("DOWNLOADS_MAX_UPLOAD_SIZE", default=5 * 1024**3),
    1,
)
DOWNLOADS_STORE_NAME = env.str("DOWNLOADS_STORE_NAME", default="Digital Downloads")
# Absolute links in emails and the storefront JSON; falls back to the request's host.
DOWNLOADS_SITE_URL = env.str("DOWNLOADS_SITE_URL", default="").strip().rstrip("/")
if DOWNLOADS_SITE_URL and not (
    urlparse(DOWNLOADS_SITE_URL).scheme in ("http", "https") and urlparse(DOWNLOADS_SITE_URL).netloc
):
    raise ImproperlyConfigured(
        "DOWNLOADS_SITE_URL must be an absolute http:// or https:// URL such as "
        f"https://shop.example.com, got {DOWNLOADS_SITE_URL!r}."
    )
# After the sale (issue 7): backfills and webhooks; see README.md ("Webhooks").
DOWNLOADS_BACKFILL_BATCH_SIZE = in_range(
    "DOWNLOADS_BACKFILL_BATCH_SIZE", env.int("DOWNLOADS_BACKFILL_BATCH_SIZE", default=500), 1
)
DOWNLOADS_WEBHOOK_TIMEOUT = in_range(
    "DOWNLOADS_WEBHOOK_TIMEOUT", env.int("DOWNLOADS_WEBHOOK_TIMEOUT", default=10), 1
)
DOWNLOADS_WEBHOOK_RETRY_BASE = in_range(
    "DOWNLOADS_WEBHOOK_RETRY_BASE", env.int("DOWNLOADS_WEBHOOK_RETRY_BASE", default=30), 0
)
DOWNLOADS_WEBHOOK_GIVE_UP_AFTER = in_range(
    "DOWNLOADS_WEBHOOK_GIVE_UP_AFTER", env.int("DOWNLOADS_WEBHOOK_GIVE_UP_AFTER", default=86400), 0
)
DOWNLOADS_WEBHOOK_CACHE_SECONDS = in_range(
    "DOWNLOADS_WEBHOOK_CACHE_SECONDS", env.int("DOWNLOADS_WEBHOOK_CACHE_SECONDS", default=30), 0
)
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
# Seconds between the probes that tell whether S3 can be reached (downloads/storage_health.py);
# downloads answer 503 and take nothing while it cannot. 0 turns the probe off.
DOWNLOADS_STORAGE_PROBE_SECONDS = in_range(
    "DOWNLOADS_STORAGE_PROBE_SECONDS",
    env.float("DOWNLOADS_STORAGE_PROBE_SECONDS", default=5.0),
    0,
    300,
    " seconds",
)


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
for _origin in CORS_ALLOWED_ORIGINS:
    _parts = urlparse(_origin)
    if _parts.scheme not in ("http", "https") or not _parts.netloc or _parts.path:
        raise ImproperlyConfigured(
            "DOWNLOADS_CORS_ORIGINS must list origins such as https://shop.example.com "
            f"(scheme and host, no path), got {_origin!r}."
        )
CORS_URLS_REGEX = r"^/api/v2/.*$"
CORS_ALLOW_METHODS = ("GET", "OPTIONS")

# --- REST API ---------------------------------------------------------------------------------

# Requests per API key (per staff user, or per IP before authentication) and period, in the
# grammar of `throttle_rate` above.
DOWNLOADS_API_THROTTLE = throttle_rate("DOWNLOADS_API_THROTTLE", "60/min")
# Public licence API calls (activate, validate, deactivate) per client address and period: a
# seller's app checks its key on every start, a key guesser is stopped long before it gets far.
DOWNLOADS_LICENSE_THROTTLE = throttle_rate("DOWNLOADS_LICENSE_THROTTLE", "60/min")
# Direct uploads (presigned S3 POST, or the app's signed upload URL) stay open this long.
DOWNLOADS_UPLOAD_URL_TTL = in_range(
    "DOWNLOADS_UPLOAD_URL_TTL",
    env.int("DOWNLOADS_UPLOAD_URL_TTL", default=3600),
    60,
    7 * 86400,
    " seconds",
)
# Seconds an upload's body may go without a byte before the request answers 408 and frees
# its server thread (a client that announced a length and stopped sending).
DOWNLOADS_UPLOAD_READ_TIMEOUT = in_range(
    "DOWNLOADS_UPLOAD_READ_TIMEOUT",
    env.float("DOWNLOADS_UPLOAD_READ_TIMEOUT", default=30.0),
    0.1,
    3600,
    " seconds",
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        # DRF's HTTP Basic under the login protection (429 auth.locked_out when locked out).
        "accounts.authentication.BasicAuthentication",
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
    "NUM_PROXIES": in_range(
        "DOWNLOADS_NUM_PROXIES", env.int("DOWNLOADS_NUM_PROXIES", default=0), 0, 10
    ),
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
    # Enums stay inline where they are used (every resource has its own `object` constant);
    # nullable composites get an explicit null member, which OpenAPI 3.0 needs.
    "POSTPROCESSING_HOOKS": ["downloads.api.schema.openapi_30_nullables"],
}

# --- Background tasks (django-tasks, database backend from django-tasks-db) -------------------
# Workers: `manage.py db_worker` (django-tasks-db's worker, with the heartbeat and recovery of
# downloads/management/commands/db_worker.py). The task table keeps its app label
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
# Each worker beats every DOWNLOADS_WORKER_HEARTBEAT seconds (from a thread, whatever it is
# running); one silent for DOWNLOADS_WORKER_DEAD_AFTER seconds is dead, and any other worker
# makes its running task runnable again within DEAD_AFTER + HEARTBEAT seconds of the death (70
# by default). A task whose worker died under it more than DOWNLOADS_WORKER_MAX_RECOVERIES
# times is failed instead of run again (downloads/services/workers.py).
DOWNLOADS_WORKER_HEARTBEAT = in_range(
    "DOWNLOADS_WORKER_HEARTBEAT",
    env.float("DOWNLOADS_WORKER_HEARTBEAT", default=10.0),
    0.1,
    60,
    " seconds",
)
DOWNLOADS_WORKER_DEAD_AFTER = env.float("DOWNLOADS_WORKER_DEAD_AFTER", default=60.0)
# Two beats at least: a worker that misses one beat (a slow database) is not dead yet.
if not 2 * DOWNLOADS_WORKER_HEARTBEAT <= DOWNLOADS_WORKER_DEAD_AFTER <= 3600:
    raise ImproperlyConfigured(
        "DOWNLOADS_WORKER_DEAD_AFTER must be at least twice DOWNLOADS_WORKER_HEARTBEAT "
        f"({2 * DOWNLOADS_WORKER_HEARTBEAT:g} s) and at most 3600 seconds, "
        f"got {DOWNLOADS_WORKER_DEAD_AFTER}."
    )
DOWNLOADS_WORKER_MAX_RECOVERIES = in_range(
    "DOWNLOADS_WORKER_MAX_RECOVERIES",
    env.int("DOWNLOADS_WORKER_MAX_RECOVERIES", default=3),
    0,
    100,
)

# --- Cache (API and licence throttles, the reset-email memo, the webhook subscription memo) ---
# Counters every process must share (N workers must not mean N times each limit). Production's
# default is Django's database cache: no extra server, its table made by `migrate`
# (downloads/checks.py). DJANGO_CACHE_URL picks another, read like DATABASE_URL:
# redis://127.0.0.1:6379/0 is Django's RedisCache (atomic counters, no SQL per request).
# DJANGO_CACHE_BACKEND + DJANGO_CACHE_LOCATION (a backend's dotted path and its location) are
# still read for deployments that set them. Development and tests keep local memory.

CACHE_TABLE = "downloads_cache"
if env.str("DJANGO_CACHE_URL", default=""):
    if env.str("DJANGO_CACHE_BACKEND", default=""):
        raise ImproperlyConfigured(
            "DJANGO_CACHE_URL and DJANGO_CACHE_BACKEND are both set: keep DJANGO_CACHE_URL."
        )
    _cache = env.cache_url("DJANGO_CACHE_URL")
elif env.str("DJANGO_CACHE_BACKEND", default=""):
    _cache = {
        "BACKEND": env.str("DJANGO_CACHE_BACKEND"),
        "LOCATION": env.str("DJANGO_CACHE_LOCATION", default="downloads"),
    }
elif DEV:
    _cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "downloads"}
else:
    _cache = {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": CACHE_TABLE,
        # Past MAX_ENTRIES rows a write deletes the expired ones, then a third of the rest in
        # key order, live counters included: room for every address of a busy minute.
        "OPTIONS": {"MAX_ENTRIES": 20000},
    }
CACHES = {"default": _cache}

# --- Email ------------------------------------------------------------------------------------

# EMAIL_URL=smtp://user:pass@host:587 (smtp+tls:// STARTTLS, smtps:// TLS from the first byte;
# user and password percent-encoded); without it, EMAIL_BACKEND (the console by default).
# Production refuses to start with a backend that delivers nothing (below, and the deploy
# check in downloads/checks.py): the console would print password-reset links, staff's too, to
# the log. DOWNLOADS_ALLOW_CONSOLE_EMAIL=1 accepts that (a staging host without mail).

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
EMAIL_UNDELIVERED_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)
DOWNLOADS_ALLOW_CONSOLE_EMAIL = env.bool("DOWNLOADS_ALLOW_CONSOLE_EMAIL", default=False)
if not DEV and EMAIL_BACKEND in EMAIL_UNDELIVERED_BACKENDS and not DOWNLOADS_ALLOW_CONSOLE_EMAIL:
    raise ImproperlyConfigured(
        "EMAIL_URL must name a mail server in production: mail would go to "
        f"{EMAIL_BACKEND}, which delivers nothing (the console prints password-reset links to "
        "the log). Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587, or "
        "DOWNLOADS_ALLOW_CONSOLE_EMAIL=1 to run without mail."
    )

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
    SECURE_HSTS_SECONDS = in_range(
        "DJANGO_HSTS_SECONDS", env.int("DJANGO_HSTS_SECONDS", default=31536000), 0
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
# The buyer-facing words (pages, emails, plurals): locale/en/LC_MESSAGES/django.po, compiled
# to the committed django.mo (README, "Buyers' words"); another language is one more catalogue.
LOCALE_PATHS = [BASE_DIR / "locale"]
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
