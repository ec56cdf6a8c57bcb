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
    # A real secret key, so that cases without DJANGO_DEBUG=1 start as production does.
    env.update(DOWNLOADS_VAR_DIR=str(tmp_path), DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
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


def test_integers_are_read_and_bounded_as_documented(tmp_path):
    cases = [
        {},
        {"DOWNLOADS_URL_TTL": "120", "DOWNLOADS_DEFAULT_LIMIT": "0", "DOWNLOADS_NUM_PROXIES": "1"},
        {"DOWNLOADS_URL_TTL": "99999", "DOWNLOADS_DEFAULT_LIMIT": "-4"},
    ]
    names = ["DOWNLOADS_URL_TTL", "DOWNLOADS_DEFAULT_LIMIT", "DOWNLOADS_WEBHOOK_TIMEOUT"]
    default, custom, bounded = load_settings(cases, [*names, "REST_FRAMEWORK"], tmp_path)
    assert [default[name] for name in names] == [60, 10, 10]
    assert default["REST_FRAMEWORK"]["NUM_PROXIES"] == 0
    assert [custom[name] for name in names] == [120, 0, 10]
    assert custom["REST_FRAMEWORK"]["NUM_PROXIES"] == 1
    assert [bounded[name] for name in names] == [3600, 0, 10]


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
        "ENGINE": "django.db.backends.postgresql",
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


def test_cache_is_local_memory_unless_pointed_at_a_shared_one(tmp_path):
    cases = [
        {},
        {
            "DJANGO_CACHE_BACKEND": "django.core.cache.backends.redis.RedisCache",
            "DJANGO_CACHE_LOCATION": "redis://127.0.0.1:6379/0",
        },
    ]
    default, redis = (r["CACHES"]["default"] for r in load_settings(cases, ["CACHES"], tmp_path))
    assert default == {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "downloads",
    }
    assert redis == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }


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
    console, chosen = load_settings(
        [{}, {"EMAIL_BACKEND": dummy}], ["EMAIL_BACKEND", "DEFAULT_FROM_EMAIL"], tmp_path
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
        ({"DJANGO_LOG_LEVEL": "chatty"}, "DJANGO_LOG_LEVEL must be"),
        (
            {"DOWNLOADS_TASKS_BACKEND": "django_tasks.backends.database.DatabaseBackend"},
            "moved to django_tasks_db.DatabaseBackend",
        ),
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
    assert get_commands()["db_worker"] == "django_tasks_db"


def test_api_throttle_empty_means_the_default_and_a_bad_rate_stops_the_start(tmp_path):
    good = {
        "": "60/min",
        " ": "60/min",
        " 10/hour ": "10/hour",
        "5/s": "5/s",
        "100/days": "100/days",
    }
    bad = ["abc", "60", "60/dz", "60/mon", "-1/min", "60/min/2", "9999999999/min", "60/m\n0"]
    cases = [{"DJANGO_DEBUG": "1", "DOWNLOADS_API_THROTTLE": value} for value in [*good, *bad]]
    results = load_settings(cases, ["DOWNLOADS_API_THROTTLE"], tmp_path)
    assert results[: len(good)] == [{"DOWNLOADS_API_THROTTLE": rate} for rate in good.values()]
    for value, result in zip(bad, results[len(good) :], strict=True):
        assert "DOWNLOADS_API_THROTTLE must be" in result.get("error", ""), (value, result)


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
