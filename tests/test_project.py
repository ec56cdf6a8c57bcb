"""The project as an operator meets it: settings, migrations, deploy checks, commands."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts import tokens
from accounts.models import ApiKey
from downloads.models import Download, DownloadGrant, Media, Order, Product
from tests import factories

ROOT = Path(__file__).resolve().parent.parent


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
    assert counts[0] == 3 and counts[3] == 1 and counts[4] >= 4
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
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
