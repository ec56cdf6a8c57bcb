"""README.md is the user's manual: what it promises about configuration holds."""

import json
import re
from pathlib import Path

from tests.downloads_project.test_settings import PRODUCTION, run_manage

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_variable_the_settings_read_is_in_the_readme():
    settings_source = (ROOT / "downloads_project" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.\w+|throttle_rate)\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    assert len(read) > 40
    missing = sorted(name for name in read if f"`{name}`" not in README)
    assert missing == []


def test_the_readme_s_plain_http_recipe_turns_off_what_https_needs(tmp_path):
    block = re.search(r"export (DJANGO_SECURE_SSL_REDIRECT=.*?)\n```", README, re.DOTALL)
    recipe = dict(
        item.split("=", 1) for item in block.group(1).replace("\\\n", " ").split() if "=" in item
    )
    assert set(recipe) == {
        "DJANGO_SECURE_SSL_REDIRECT",
        "DJANGO_SECURE_COOKIES",
        "DJANGO_HSTS_SECONDS",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
    }
    names = [
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "CSRF_TRUSTED_ORIGINS",
    ]
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    )
    result = run_manage("shell", "-c", code, env_extra={**PRODUCTION, **recipe}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "CSRF_TRUSTED_ORIGINS": ["http://store.internal:8000"],
    }


def test_a_custom_s3_domain_is_refused_at_start(tmp_path):
    result = run_manage(
        "check",
        env_extra={**PRODUCTION, "AWS_S3_CUSTOM_DOMAIN": "cdn.example.com"},
        tmp_path=tmp_path,
    )
    assert result.returncode != 0
    assert "AWS_S3_CUSTOM_DOMAIN is not supported" in result.stderr
