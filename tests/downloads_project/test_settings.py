"""The project as an operator meets it: settings, migrations, deploy checks, commands."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import RequestFactory

from accounts import tokens
from accounts.models import ApiKey
from downloads.models import Download, DownloadGrant, Media, Order, Product, StampedCopy
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, env_extra=None, tmp_path=None):
    """Run manage.py in a clean process, outside pytest (no PYTEST_VERSION, so no test mode)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.pop("DOWNLOADS_DEV", None)
    if tmp_path is not None:
        env["DOWNLOADS_VAR_DIR"] = str(tmp_path)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DJANGO_SECRET_KEY": "k" * 20 + "4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f",
    "DJANGO_ALLOWED_HOSTS": "store.example.com",
    "AWS_STORAGE_BUCKET_NAME": "store-files",
    "AWS_S3_REGION_NAME": "eu-west-1",
    "EMAIL_URL": "smtp+tls://store:pass@mail.example.com:587",
}


def test_deploy_check_is_clean_under_production_variables(tmp_path):
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env_extra=PRODUCTION, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = run_manage("check", env_extra=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path):
    result = run_manage(
        "check", env_extra={**PRODUCTION, "DJANGO_SECRET_KEY": "short"}, tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "at least 50" in result.stderr


def test_models_and_migrations_agree(tmp_path):
    result = run_manage(
        "makemigrations", "--check", "--dry-run", env_extra={"DJANGO_DEBUG": "1"}, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_s3_storage_is_private_sigv4_and_never_overwrites():
    from downloads_project.settings import s3_storage_options

    options = s3_storage_options("bucket")
    assert options["default_acl"] is None
    assert options["querystring_auth"] is True
    assert options["signature_version"] == "s3v4"
    assert options["file_overwrite"] is False


@pytest.mark.django_db
def test_local_media_has_no_public_url(client):
    from downloads_project import settings as project_settings

    media = factories.MediaFactory(filename="secret.pdf")
    assert project_settings.MEDIA_URL is None
    with pytest.raises(ValueError):
        media.file.url  # noqa: B018 - the storage refuses to make a public URL
    assert client.get("/" + media.file.name).status_code == 404


@pytest.mark.django_db
def test_seed_demo_loads_a_store_and_is_idempotent(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    counts = [M.objects.count() for M in (Product, Media, Download, Order, DownloadGrant)]
    call_command("seed_demo")
    again = [M.objects.count() for M in (Product, Media, Download, Order, DownloadGrant)]
    assert counts == again
    assert counts[0] == 4 and counts[3] == 1 and counts[4] >= 5
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    # Priced products; a licence key for the software, a stamped copy of the guide on its way.
    assert order.total == 1900 + 4900 + 0 + 3900
    key = order.license_keys.get()
    assert (key.activation_limit, key.product.sku) == (3, "SKETCH-1")
    assert StampedCopy.objects.filter(grant__order=order, status="pending").count() == 1
    assert "Store home:" in first
    assert Download.objects.filter(url__isnull=False).exists()
    assert "merchant@example.com" in first and order.access_token in first
    pdf = Media.objects.get(filename__endswith=".pdf")
    with pdf.file.open("rb") as handle:
        assert handle.read(5) == b"%PDF-"


@pytest.mark.django_db
def test_create_api_key_prints_the_raw_key_once_and_stores_only_its_hash(capsys):
    call_command("create_api_key", "--name", "storefront", "--scope", "read")
    out = capsys.readouterr().out.strip()
    key = ApiKey.objects.get()
    prefix, secret = tokens.split_key(out)
    assert key.prefix == prefix and key.scope == "read"
    assert secret not in key.hashed_secret and tokens.secret_matches(secret, key.hashed_secret)


@pytest.mark.parametrize(("switch", "threshold"), [(None, "5"), ("1", "5"), ("0", "None")])
def test_postgresql_statements_are_prepared_unless_turned_off(tmp_path, switch, threshold):
    env = {"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db", "DJANGO_DEBUG": "1"}
    if switch is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = switch
    done = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; o = settings.DATABASES['default']['OPTIONS'];"
        " print(o['server_side_binding'], o['prepare_threshold'])",
        env_extra=env,
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split() == ["True", threshold]


# --- Reading the environment (django-environ, through settings.Env) ---------------------------

# Loads the settings module once per case in one process (a reload per case), outside pytest.
_LOAD_SETTINGS = """
import importlib, json, os, sys
from django.core.exceptions import ImproperlyConfigured
cases, names = json.load(sys.stdin)
base = dict(os.environ)
module = None
results = []
for case in cases:
    os.environ.clear()
    os.environ.update(base, **case)
    try:
        if module is None:
            import downloads_project.settings as module
        else:
            module = importlib.reload(module)
    except ImproperlyConfigured as exc:
        results.append({"error": str(exc)})
    else:
        results.append({name: getattr(module, name, "<unset>") for name in names})
print(json.dumps(results, default=str))
"""


def load_settings(cases: list[dict], names: list[str], tmp_path) -> list[dict]:
    """Each case's settings `names` (or {"error": message}), as a new process reads them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_", "DATABASE_", "DOWNLOADS_", "EMAIL_", "AWS_"))
    }
    # A real secret key and a mail server, so that cases without DJANGO_DEBUG=1 start as
    # production does (a case unsets EMAIL_URL with "EMAIL_URL": "").
    env.update(
        DOWNLOADS_VAR_DIR=str(tmp_path),
        DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"],
        EMAIL_URL=PRODUCTION["EMAIL_URL"],
    )
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SETTINGS],
        cwd=ROOT,
        env=env,
        input=json.dumps([cases, names]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_booleans_take_the_usual_words_and_empty_means_the_default(tmp_path):
    words = {"1": True, "true": True, "Yes": True, "on": True, "0": False, "false": False}
    words |= {"no": False, "OFF": False, " 1 ": True}
    cases = [{"DJANGO_DEBUG": word} for word in words]
    # Production values: an empty DJANGO_SECURE_COOKIES keeps the default (on).
    cases += [
        {**PRODUCTION, "DJANGO_SECURE_COOKIES": value, "DJANGO_SECURE_SSL_REDIRECT": "0"}
        for value in ("", "0")
    ]
    results = load_settings(
        cases, ["DEBUG", "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT"], tmp_path
    )
    assert [result["DEBUG"] for result in results[: len(words)]] == list(words.values())
    assert results[-2] == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": False,
    }
    assert results[-1]["SESSION_COOKIE_SECURE"] is False


def test_integers_are_read_and_a_value_out_of_range_stops_the_start(tmp_path):
    cases = [
        {},
        {"DOWNLOADS_URL_TTL": "120", "DOWNLOADS_DEFAULT_LIMIT": "0", "DOWNLOADS_NUM_PROXIES": "1"},
        {"DOWNLOADS_URL_TTL": "99999"},
        # Once moved silently to 0, which means unlimited downloads.
        {"DOWNLOADS_DEFAULT_LIMIT": "-4"},
    ]
    names = ["DOWNLOADS_URL_TTL", "DOWNLOADS_DEFAULT_LIMIT", "DOWNLOADS_WEBHOOK_TIMEOUT"]
    default, custom, ttl, limit = load_settings(cases, [*names, "REST_FRAMEWORK"], tmp_path)
    assert [default[name] for name in names] == [60, 10, 10]
    assert default["REST_FRAMEWORK"]["NUM_PROXIES"] == 0
    assert [custom[name] for name in names] == [120, 0, 10]
    assert custom["REST_FRAMEWORK"]["NUM_PROXIES"] == 1
    assert ttl == {"error": "DOWNLOADS_URL_TTL must be 1 to 3600 seconds, got 99999."}
    assert limit == {"error": "DOWNLOADS_DEFAULT_LIMIT must be at least 0, got -4."}


def test_lists_are_comma_separated_without_spaces_or_empty_items(tmp_path):
    cases = [
        {},
        {
            "DJANGO_ALLOWED_HOSTS": " shop.example.com, www.shop.example.com,,",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://shop.example.com",
            "DOWNLOADS_CORS_ORIGINS": "https://a.example.com , https://b.example.com",
        },
    ]
    names = ["ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "CORS_ALLOWED_ORIGINS"]
    default, custom = load_settings(cases, names, tmp_path)
    # The suite's own runs are DEV; outside it DJANGO_DEBUG is what turns the local names on.
    assert default == {"ALLOWED_HOSTS": [], "CSRF_TRUSTED_ORIGINS": [], "CORS_ALLOWED_ORIGINS": []}
    assert custom == {
        "ALLOWED_HOSTS": ["shop.example.com", "www.shop.example.com"],
        "CSRF_TRUSTED_ORIGINS": ["https://shop.example.com"],
        "CORS_ALLOWED_ORIGINS": ["https://a.example.com", "https://b.example.com"],
    }
    debug = load_settings([{"DJANGO_DEBUG": "1"}], ["ALLOWED_HOSTS"], tmp_path)[0]
    assert debug["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]", "testserver"]


def test_database_url_sqlite_by_default_postgresql_with_kept_connections(tmp_path):
    cases = [
        {"DJANGO_DEBUG": "1"},
        {
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": "postgres://shop:p%40ss%2Fw@db.example.com:6432/store?sslmode=require",
            "DATABASE_CONN_MAX_AGE": "30",
        },
        {"DJANGO_DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path}/other.sqlite3"},
    ]
    sqlite, postgres, other = (
        r["DATABASES"]["default"] for r in load_settings(cases, ["DATABASES"], tmp_path)
    )
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert sqlite["NAME"] == str(tmp_path / "db.sqlite3")
    assert sqlite["CONN_MAX_AGE"] == 0
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert other["NAME"] == str(tmp_path / "other.sqlite3")
    assert {k: postgres[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "ENGINE": "downloads.postgresql",
        "NAME": "store",
        "USER": "shop",
        "PASSWORD": "p@ss/w",
        "HOST": "db.example.com",
        "PORT": 6432,
    }
    assert postgres["CONN_MAX_AGE"] == 30 and postgres["CONN_HEALTH_CHECKS"] is True
    assert postgres["OPTIONS"] == {
        "sslmode": "require",
        "server_side_binding": True,
        "prepare_threshold": 5,
    }


DATABASE_CACHE = "django.core.cache.backends.db.DatabaseCache"
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


def test_production_caches_in_the_database_unless_a_cache_url_says_otherwise(tmp_path):
    cases = [
        {},
        {"DJANGO_DEBUG": "1"},
        {"DJANGO_CACHE_URL": "redis://127.0.0.1:6379/0"},
        {"DJANGO_CACHE_URL": "dbcache://shared_cache"},
        # The variables of earlier versions still work.
        {"DJANGO_CACHE_BACKEND": REDIS_CACHE, "DJANGO_CACHE_LOCATION": "redis://10.0.0.5:6379/2"},
        {"DJANGO_CACHE_URL": "redis://127.0.0.1:6379/0", "DJANGO_CACHE_BACKEND": REDIS_CACHE},
    ]
    production, development, redis, database, legacy, both = (
        r.get("CACHES", r) for r in load_settings(cases, ["CACHES"], tmp_path)
    )
    assert production == {
        "default": {
            "BACKEND": DATABASE_CACHE,
            "LOCATION": "downloads_cache",
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    }
    assert development["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert redis["default"] == {"BACKEND": REDIS_CACHE, "LOCATION": "redis://127.0.0.1:6379/0"}
    assert database["default"] == {"BACKEND": DATABASE_CACHE, "LOCATION": "shared_cache"}
    assert legacy["default"] == {"BACKEND": REDIS_CACHE, "LOCATION": "redis://10.0.0.5:6379/2"}
    assert "DJANGO_CACHE_URL and DJANGO_CACHE_BACKEND are both set" in both["error"]


# A bad API key, twice, through the real app in a new process: each refusal counts against the
# address in the cache's throttle (DOWNLOADS_API_THROTTLE=3/hour here), so the fourth is 429.
_TWO_GUESSES = (
    "from django.test import Client; client = Client();"
    " print([client.get('/api/v1/products', secure=True, HTTP_HOST='store.example.com',"
    " HTTP_AUTHORIZATION='Bearer dd_000000000000_guess').status_code for _ in range(2)])"
)


@pytest.fixture(scope="module")
def production_database(tmp_path_factory):
    """A fresh SQLite database migrated by `manage.py migrate` under production settings."""
    folder = tmp_path_factory.mktemp("production")
    done = run_manage("migrate", "--noinput", env_extra=PRODUCTION, tmp_path=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def two_processes_guess(folder, **variables) -> list[str]:
    env = {**PRODUCTION, "DOWNLOADS_API_THROTTLE": "3/hour", **variables}
    answers = []
    for _ in range(2):
        done = run_manage("shell", "-c", _TWO_GUESSES, env_extra=env, tmp_path=folder)
        assert done.returncode == 0, done.stderr
        answers.append(done.stdout.splitlines()[-1])
    return answers


def test_migrate_makes_the_cache_table_and_processes_share_its_counts(production_database):
    import sqlite3

    with sqlite3.connect(production_database / "db.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"downloads_cache", "axes_accessattempt"} <= tables
    assert two_processes_guess(production_database) == ["[401, 401]", "[401, 429]"]


def test_processes_share_throttle_counts_in_redis(production_database, redis_server):
    import redis

    redis.Redis.from_url(redis_server.url(3)).flushdb()
    answers = two_processes_guess(production_database, DJANGO_CACHE_URL=redis_server.url(3))
    assert answers == ["[401, 401]", "[401, 429]"]
    # The count lives in Redis, not in the database's cache table.
    assert redis.Redis.from_url(redis_server.url(3)).dbsize() == 1


def _throttle_in_turns(caches_config: dict, rounds: int) -> list[bool]:
    """ApiKeyRateThrottle (3/hour) for one address, through two cache handlers in turn: two
    separate cache objects and connections, as two processes would have."""
    from django.core.cache import CacheHandler

    from downloads.api.throttling import ApiKeyRateThrottle

    handlers = [CacheHandler(caches_config), CacheHandler(caches_config)]
    allowed = []
    for n in range(rounds):
        throttle = ApiKeyRateThrottle()
        throttle.cache = handlers[n % 2]["default"]
        request = RequestFactory().get("/api/v1/products", REMOTE_ADDR="203.0.113.8")
        request.auth = request.user = None  # a caller not yet identified: counted by address
        allowed.append(throttle.allow_request(request, None))
    assert handlers[0]["default"] is not handlers[1]["default"]
    return allowed


@pytest.mark.django_db
def test_two_database_cache_connections_agree_on_a_throttle_count(settings):
    settings.DOWNLOADS_API_THROTTLE = "3/hour"
    config = {"default": {"BACKEND": DATABASE_CACHE, "LOCATION": "downloads_cache"}}
    settings.CACHES = config
    call_command("createcachetable", verbosity=0)
    assert _throttle_in_turns(config, 5) == [True, True, True, False, False]


def test_two_redis_connections_agree_on_a_throttle_count(settings, redis_server):
    import redis

    redis.Redis.from_url(redis_server.url(4)).flushdb()
    settings.DOWNLOADS_API_THROTTLE = "3/hour"
    config = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": redis_server.url(4)}}
    assert _throttle_in_turns(config, 5) == [True, True, True, False, False]


def test_the_licence_throttle_counts_across_redis_connections(settings, redis_server):
    from django.core.cache import CacheHandler

    from downloads.api.throttling import LicenseRateThrottle

    settings.DOWNLOADS_LICENSE_THROTTLE = "4/day"
    config = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": redis_server.url(5)}}
    handlers = [CacheHandler(config) for _ in range(3)]
    handlers[0]["default"].clear()
    allowed = []
    for n in range(6):
        throttle = LicenseRateThrottle()
        throttle.cache = handlers[n % 3]["default"]
        request = RequestFactory().post("/api/v1/licenses/validate", REMOTE_ADDR="203.0.113.9")
        allowed.append(throttle.allow_request(request, None))
    assert allowed == [True, True, True, True, False, False]


def test_a_cache_url_reads_like_the_database_and_email_urls():
    from downloads_project.settings import Env

    env = Env()
    env.ENVIRON = {"SHARED_CACHE_URL": "redis://127.0.0.1:6379/1", "BAD_CACHE_URL": "nope://x"}
    assert env.cache_url("SHARED_CACHE_URL") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/1",
    }
    assert env.cache_url("UNSET_CACHE_URL", default="locmemcache://downloads") == {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "downloads",
    }
    with pytest.raises(ImproperlyConfigured, match="BAD_CACHE_URL"):
        env.cache_url("BAD_CACHE_URL")


EMAIL = ["EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"]
EMAIL += ["EMAIL_USE_TLS", "EMAIL_USE_SSL"]
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def test_email_url_schemes_as_documented(tmp_path):
    cases = {
        "smtp://store%40example.com:p%3Ass@mail.example.com:587": (
            [SMTP, "mail.example.com", 587, "store@example.com", "p:ss", False, False]
        ),
        "smtp+tls://u:p@mail.example.com:587": [
            SMTP,
            "mail.example.com",
            587,
            "u",
            "p",
            True,
            False,
        ],
        "submission://u:p@mail.example.com:587": [
            SMTP,
            "mail.example.com",
            587,
            "u",
            "p",
            True,
            False,
        ],
        "smtps://u:p@mail.example.com:465": [SMTP, "mail.example.com", 465, "u", "p", False, True],
        "smtp://mail.example.com": [SMTP, "mail.example.com", 25, "", "", False, False],
    }
    results = load_settings([{"EMAIL_URL": url} for url in cases], EMAIL, tmp_path)
    assert [[result[name] for name in EMAIL] for result in results] == list(cases.values())


def test_without_email_url_mail_goes_to_the_console_or_email_backend(tmp_path):
    dummy = "django.core.mail.backends.dummy.EmailBackend"
    development = {"DJANGO_DEBUG": "1", "EMAIL_URL": ""}
    console, chosen = load_settings(
        [development, {**development, "EMAIL_BACKEND": dummy}],
        ["EMAIL_BACKEND", "DEFAULT_FROM_EMAIL"],
        tmp_path,
    )
    assert console["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert console["DEFAULT_FROM_EMAIL"] == "Digital Downloads <store@localhost>"
    assert chosen["EMAIL_BACKEND"] == dummy


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be a boolean"),
        (
            {"DATABASE_URL": "postgres://u:p@db/shop", "DATABASE_PREPARED_STATEMENTS": "often"},
            "DATABASE_PREPARED_STATEMENTS must be",
        ),
        ({"DOWNLOADS_URL_TTL": "1m"}, "DOWNLOADS_URL_TTL must be an integer, got '1m'"),
        ({"DATABASE_CONN_MAX_AGE": "forever"}, "DATABASE_CONN_MAX_AGE must be an integer"),
        ({"DATABASE_URL": "mysqlx://u:secret@db/shop"}, "DATABASE_URL has the unknown scheme"),
        ({"DATABASE_URL": "postgres://u:secret@db:port/shop"}, "DATABASE_URL cannot be read"),
        ({"EMAIL_URL": "smtpx://u:secret@mail.example.com"}, "EMAIL_URL cannot be read"),
        ({"EMAIL_URL": "smtp://u:secret@mail.example.com:tls"}, "EMAIL_URL cannot be read"),
        ({"DOWNLOADS_API_THROTTLE": "60 a minute"}, "DOWNLOADS_API_THROTTLE must be N/sec"),
        ({"DOWNLOADS_LICENSE_THROTTLE": "60/mon"}, "DOWNLOADS_LICENSE_THROTTLE must be N/sec"),
        ({"DOWNLOADS_LOGIN_FAILURE_LIMIT": "0"}, "DOWNLOADS_LOGIN_FAILURE_LIMIT must be 1 to 1000"),
        ({"DOWNLOADS_LOGIN_COOLOFF": "15m"}, "DOWNLOADS_LOGIN_COOLOFF must be an integer"),
        ({"DOWNLOADS_LOGIN_COOLOFF": "0"}, "DOWNLOADS_LOGIN_COOLOFF must be 1 to 604800 seconds"),
        ({"DOWNLOADS_SITE_URL": "shop.example.com"}, "DOWNLOADS_SITE_URL must be an absolute"),
        (
            {"DOWNLOADS_CORS_ORIGINS": "https://a.example.com,https://b.example.com/shop"},
            "DOWNLOADS_CORS_ORIGINS must list origins",
        ),
        ({"DOWNLOADS_NUM_PROXIES": "-1"}, "DOWNLOADS_NUM_PROXIES must be 0 to 10, got -1"),
        ({"DOWNLOADS_UPLOAD_URL_TTL": "10"}, "DOWNLOADS_UPLOAD_URL_TTL must be 60 to 604800"),
        ({"DOWNLOADS_MAX_UPLOAD_SIZE": "0"}, "DOWNLOADS_MAX_UPLOAD_SIZE must be at least 1"),
        ({"DOWNLOADS_WEBHOOK_TIMEOUT": "0"}, "DOWNLOADS_WEBHOOK_TIMEOUT must be at least 1"),
        ({"DOWNLOADS_BACKFILL_BATCH_SIZE": "0"}, "DOWNLOADS_BACKFILL_BATCH_SIZE must be"),
        ({"DJANGO_CACHE_URL": "memcachedx://u:secret@x"}, "DJANGO_CACHE_URL cannot be read"),
        ({"DJANGO_LOG_LEVEL": "chatty"}, "DJANGO_LOG_LEVEL must be"),
        (
            {"DOWNLOADS_TASKS_BACKEND": "django_tasks.backends.database.DatabaseBackend"},
            "moved to django_tasks_db.DatabaseBackend",
        ),
        ({"DOWNLOADS_WORKER_HEARTBEAT": "0"}, "DOWNLOADS_WORKER_HEARTBEAT must be 0.1 to 60"),
        ({"DOWNLOADS_WORKER_HEARTBEAT": "often"}, "DOWNLOADS_WORKER_HEARTBEAT cannot be read"),
        (
            {"DOWNLOADS_WORKER_HEARTBEAT": "10", "DOWNLOADS_WORKER_DEAD_AFTER": "15"},
            "DOWNLOADS_WORKER_DEAD_AFTER must be at least twice DOWNLOADS_WORKER_HEARTBEAT",
        ),
        ({"DOWNLOADS_WORKER_MAX_RECOVERIES": "-1"}, "DOWNLOADS_WORKER_MAX_RECOVERIES must be"),
    ],
)
def test_a_value_that_does_not_parse_stops_the_start_naming_its_variable(
    tmp_path, variables, message
):
    (result,) = load_settings([{"DJANGO_DEBUG": "1", **variables}], ["DEBUG"], tmp_path)
    assert message in result.get("error", "")
    assert "secret" not in result["error"]  # a URL's password is never echoed


def test_a_value_is_taken_as_written(tmp_path):
    # django-environ alone reads "$NAME" as the value of the variable NAME.
    key = "$" + "x7" * 30
    (result,) = load_settings(
        [{**PRODUCTION, "DJANGO_SECRET_KEY": key, key[1:]: "other"}], ["SECRET_KEY"], tmp_path
    )
    assert result == {"SECRET_KEY": key}


def test_code_reads_settings_without_fallback_defaults():
    """Defaults live in settings.py: code says settings.X, never getattr(settings, X, default)."""
    from django.conf import settings

    fallback = re.compile(r"getattr\(\s*settings\s*,[^)]*,")
    named = re.compile(r"settings\.(DOWNLOADS_[A-Z0-9_]+)")
    offenders, used = [], set()
    for package in ("downloads", "accounts", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}" for _ in fallback.finditer(text)]
            used |= set(named.findall(text))
    assert offenders == []
    assert used and [name for name in sorted(used) if not hasattr(settings, name)] == []


def test_tasks_run_on_django_tasks_db_with_the_table_existing_databases_have():
    from django.apps import apps
    from django.core.management import get_commands

    config = apps.get_app_config("django_tasks_database")
    assert config.name == "django_tasks_db"
    assert config.get_model("DBTaskResult")._meta.db_table == "django_tasks_database_dbtaskresult"
    # downloads' own db_worker (django-tasks-db's worker with heartbeats and recovery).
    assert get_commands()["db_worker"] == "downloads"


@pytest.mark.parametrize("name", ["DOWNLOADS_API_THROTTLE", "DOWNLOADS_LICENSE_THROTTLE"])
def test_a_throttle_empty_means_the_default_and_a_bad_rate_stops_the_start(tmp_path, name):
    # Both throttles share one grammar (settings.throttle_rate): the licence one once took
    # "60/mon" or "60/sex" and read them as minutes and seconds.
    good = {
        "": "60/min",
        " ": "60/min",
        " 10/hour ": "10/hour",
        "5/s": "5/s",
        "100/days": "100/days",
    }
    bad = ["abc", "60", "60/dz", "60/mon", "60/sex", "-1/min", "60/min/2", "9999999999/min"]
    bad += ["60/m\n0"]
    cases = [{"DJANGO_DEBUG": "1", name: value} for value in [*good, *bad]]
    results = load_settings(cases, [name], tmp_path)
    assert results[: len(good)] == [{name: rate} for rate in good.values()]
    for value, result in zip(bad, results[len(good) :], strict=True):
        assert f"{name} must be N/sec, N/min" in result.get("error", ""), (value, result)


def test_login_protection_defaults_and_settings(tmp_path):
    default, custom = load_settings(
        [{}, {"DOWNLOADS_LOGIN_FAILURE_LIMIT": "10", "DOWNLOADS_LOGIN_COOLOFF": "60"}],
        ["DOWNLOADS_LOGIN_FAILURE_LIMIT", "DOWNLOADS_LOGIN_COOLOFF", "AUTHENTICATION_BACKENDS"],
        tmp_path,
    )
    assert (default["DOWNLOADS_LOGIN_FAILURE_LIMIT"], default["DOWNLOADS_LOGIN_COOLOFF"]) == (
        5,
        900,
    )
    assert (custom["DOWNLOADS_LOGIN_FAILURE_LIMIT"], custom["DOWNLOADS_LOGIN_COOLOFF"]) == (10, 60)
    # axes' backend first: it refuses a locked-out login before a password is checked.
    assert default["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"


# --- Mail in production (finding 6: reset links printed to the log) ----------------------------

UNDELIVERED = {
    "console": {"EMAIL_URL": ""},
    "locmem": {"EMAIL_URL": "", "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
    "dummy": {"EMAIL_URL": "", "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"},
    "console url": {"EMAIL_URL": "consolemail://"},
}


def test_production_refuses_to_start_when_mail_would_be_delivered_nowhere(tmp_path):
    results = load_settings(list(UNDELIVERED.values()), ["EMAIL_BACKEND"], tmp_path)
    for name, result in zip(UNDELIVERED, results, strict=True):
        assert "EMAIL_URL must name a mail server in production" in result.get("error", ""), name
    # As an operator meets it: the start fails, naming EMAIL_URL.
    started = run_manage("check", env_extra={**PRODUCTION, "EMAIL_URL": ""}, tmp_path=tmp_path)
    assert started.returncode != 0
    assert "ImproperlyConfigured: EMAIL_URL must name a mail server" in started.stderr
    # Development and the test suite keep the console.
    (development,) = load_settings([{"DJANGO_DEBUG": "1", "EMAIL_URL": ""}], ["DEV"], tmp_path)
    assert development == {"DEV": True}


def test_an_empty_api_throttle_serves_the_api_and_a_bad_one_names_the_variable(tmp_path):
    # The API answers under an empty variable (it used to be read as a rate: every call 500).
    script = (
        "from django.test import Client; from django.test.utils import setup_test_environment;"
        " setup_test_environment();"
        " print(Client().get('/api/v1/products', HTTP_HOST='localhost').status_code)"
    )
    env = {"DJANGO_DEBUG": "1", "DOWNLOADS_API_THROTTLE": ""}
    served = run_manage("shell", "-c", script, env_extra=env, tmp_path=tmp_path)
    assert served.returncode == 0, served.stderr
    assert served.stdout.splitlines()[-1] == "401"
    env["DOWNLOADS_API_THROTTLE"] = "lots"
    refused = run_manage("check", env_extra=env, tmp_path=tmp_path)
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and "DOWNLOADS_API_THROTTLE" in refused.stderr
