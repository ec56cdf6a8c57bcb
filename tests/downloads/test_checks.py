"""The deploy checks and the database cache's table (downloads/checks.py)."""

import pytest
from django.core.management import call_command
from django.db import connection

from downloads import checks
from tests.downloads_project.test_settings import PRODUCTION, run_manage

CONSOLE = "django.core.mail.backends.console.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def test_mail_that_goes_nowhere_is_a_deploy_error(settings):
    settings.EMAIL_BACKEND = CONSOLE
    settings.DOWNLOADS_ALLOW_CONSOLE_EMAIL = False
    (error,) = checks.check_mail_is_delivered()
    assert error.id == "downloads.E001" and error.is_serious()
    assert "EMAIL_URL" in error.msg and "EMAIL_URL" in error.hint


def test_with_the_opt_out_it_is_a_warning_and_with_smtp_nothing(settings):
    settings.EMAIL_BACKEND = CONSOLE
    settings.DOWNLOADS_ALLOW_CONSOLE_EMAIL = True
    (warning,) = checks.check_mail_is_delivered()
    assert warning.id == "downloads.W001" and not warning.is_serious()
    settings.EMAIL_BACKEND = SMTP
    assert checks.check_mail_is_delivered() == []


def test_a_per_process_cache_is_a_deploy_warning(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    (warning,) = checks.check_cache_is_shared()
    assert warning.id == "downloads.W002"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache"}}
    assert checks.check_cache_is_shared() == []


def test_check_deploy_fails_when_mail_would_go_to_the_console(tmp_path):
    # DOWNLOADS_DEV starts without mail; the deploy check still says what production needs.
    env = {**PRODUCTION, "EMAIL_URL": "", "DOWNLOADS_DEV": "1"}
    checked = run_manage("check", "--deploy", env_extra=env, tmp_path=tmp_path)
    assert checked.returncode != 0
    assert "(downloads.E001) EMAIL_URL is not set to a mail server" in checked.stderr


def test_the_console_opt_out_starts_production_and_check_deploy_still_warns(tmp_path):
    env = {**PRODUCTION, "EMAIL_URL": "", "DOWNLOADS_ALLOW_CONSOLE_EMAIL": "1"}
    assert run_manage("check", env_extra=env, tmp_path=tmp_path).returncode == 0
    strict = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env_extra=env, tmp_path=tmp_path
    )
    assert strict.returncode != 0
    assert "(downloads.W001)" in strict.stderr


@pytest.mark.django_db
def test_after_migrate_the_database_cache_has_its_table(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t_cache"}
    }
    assert "t_cache" not in connection.introspection.table_names()
    # What `migrate` sends when it is done (the suite's databases are migrated already).
    call_command("migrate", verbosity=0)
    assert "t_cache" in connection.introspection.table_names()
    # Idempotent: the next migrate leaves the table as it is.
    call_command("migrate", verbosity=0)
