"""Login protection (accounts/lockout.py): on every way in with a password (the account login
page, the admin's login page, HTTP Basic on the API), failures are counted by account and by
address; past the limit the right password is refused too, with 429, until the cool-off
window has passed since the last counted failure."""

import base64
from dataclasses import dataclass
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
LIMIT = 3
COOLOFF = 600
HOME = "198.51.100.7"


@pytest.fixture(autouse=True)
def _protection(settings):
    settings.DOWNLOADS_LOGIN_FAILURE_LIMIT = LIMIT
    settings.DOWNLOADS_LOGIN_COOLOFF = COOLOFF
    # Fast hashes: these tests check many passwords (set before the users are made).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DOWNLOADS_API_THROTTLE = "100000/min"
    cache.clear()


@pytest.fixture
def merchant(db):
    return factories.StaffFactory(email="merchant@example.com")


class Clock:
    """axes' clock (the time it stamps and judges attempts by), moved by `advance`."""

    def __init__(self):
        self.offset = timedelta()

    def now(self):
        return timezone.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    import axes.handlers.proxy

    clock = Clock()
    monkeypatch.setattr(axes.handlers.proxy, "now", clock.now)
    return clock


@dataclass(frozen=True)
class Way:
    """One way in: `attempt(email, password, address)` answers the response, `admitted` says
    whether it let the visitor in."""

    name: str

    def attempt(self, email: str, password: str, address: str = HOME, **headers):
        if self.name == "api":
            token = base64.b64encode(f"{email}:{password}".encode()).decode()
            return APIClient().get(
                "/api/v1/products",
                HTTP_AUTHORIZATION=f"Basic {token}",
                REMOTE_ADDR=address,
                **headers,
            )
        path = "/account/login/" if self.name == "account" else "/admin/login/?next=/admin/"
        return Client().post(
            path, {"username": email, "password": password}, REMOTE_ADDR=address, **headers
        )

    def admitted(self, response) -> bool:
        return response.status_code == (200 if self.name == "api" else 302)

    def refused_wrong(self, response) -> bool:
        """A plain wrong-password answer: the form again (200) or the API's 401."""
        return response.status_code == (401 if self.name == "api" else 200)


WAYS = [Way("account"), Way("admin"), Way("api")]
ways = pytest.mark.parametrize("way", WAYS, ids=lambda way: way.name)


def assert_locked_out(way: Way, response) -> None:
    assert response.status_code == 429, response.content[:300]
    assert response["Retry-After"] == str(COOLOFF)
    if way.name == "api":
        body = response.json()
        assert body["code"] == "auth.locked_out"
        assert body["http_status"] == "too_many_requests"
    else:
        assert "Sign-in paused" in response.content.decode()


@ways
def test_after_the_limit_the_right_password_is_refused_with_429(way, merchant):
    answers = [way.attempt(merchant.email, "wrong guess") for _ in range(LIMIT)]
    assert all(way.refused_wrong(answer) for answer in answers[:-1])
    # The failure that reaches the limit is already answered as a lockout.
    assert_locked_out(way, answers[-1])
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD))


@ways
def test_below_the_limit_the_right_password_still_gets_in(way, merchant):
    for _ in range(LIMIT - 1):
        assert way.refused_wrong(way.attempt(merchant.email, "wrong guess"))
    assert way.admitted(way.attempt(merchant.email, PASSWORD))


@ways
def test_an_account_is_locked_from_every_address(way, merchant):
    for n in range(LIMIT):
        way.attempt(merchant.email, "wrong guess", address=f"203.0.113.{n + 1}")
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD, address="192.0.2.50"))


@ways
def test_an_address_is_locked_for_every_account(way, merchant):
    factories.StaffFactory(email="other@example.com")
    for email in ["other@example.com", "nobody@example.com", "someone@example.com"][:LIMIT]:
        way.attempt(email, "wrong guess")
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD))
    # The account itself is not locked: from another address its right password gets in.
    assert way.admitted(way.attempt(merchant.email, PASSWORD, address="192.0.2.50"))


@ways
def test_the_lockout_lifts_after_its_window(way, merchant, clock):
    for _ in range(LIMIT):
        way.attempt(merchant.email, "wrong guess")
    clock.advance(COOLOFF - 5)
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD))
    clock.advance(10)
    assert way.admitted(way.attempt(merchant.email, PASSWORD))


def test_attempts_during_a_lockout_neither_count_nor_extend_it(merchant, clock):
    way = Way("account")
    for _ in range(LIMIT):
        way.attempt(merchant.email, "wrong guess")
    attempts = list(AccessAttempt.objects.values_list("failures_since_start", "attempt_time"))
    clock.advance(COOLOFF / 2)
    for _ in range(5):
        assert_locked_out(way, way.attempt(merchant.email, "another guess"))
    assert list(AccessAttempt.objects.values_list("failures_since_start", "attempt_time")) == (
        attempts
    )
    clock.advance(COOLOFF / 2 + 1)
    assert way.admitted(way.attempt(merchant.email, PASSWORD))


def test_failures_on_different_ways_add_up(merchant):
    for way in WAYS[:LIMIT]:
        way.attempt(merchant.email, "wrong guess")
    for way in WAYS:
        assert_locked_out(way, way.attempt(merchant.email, PASSWORD, address="192.0.2.50"))


@ways
def test_the_case_and_spaces_of_an_email_count_as_one_account(way, merchant):
    for n, typed in enumerate(
        ["MERCHANT@example.com", " merchant@Example.COM", "Merchant@example.com"]
    ):
        way.attempt(typed, "wrong guess", address=f"203.0.113.{n + 1}")
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD, address="192.0.2.50"))


@ways
def test_a_forged_forwarded_for_does_not_give_an_address_a_fresh_count(way, merchant):
    # No proxy is trusted (DOWNLOADS_NUM_PROXIES=0): the address is REMOTE_ADDR.
    for n in range(LIMIT):
        way.attempt(f"guess{n}@example.com", "wrong", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}")
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD, HTTP_X_FORWARDED_FOR="10.1.1.1"))


def test_behind_a_trusted_proxy_each_client_address_counts_apart(settings, merchant):
    # DOWNLOADS_NUM_PROXIES=1 (DRF reloads its settings when they change).
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    way = Way("account")
    for n in range(LIMIT):
        way.attempt(f"guess{n}@example.com", "wrong", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert_locked_out(way, way.attempt(merchant.email, PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9"))
    assert way.admitted(way.attempt(merchant.email, PASSWORD, HTTP_X_FORWARDED_FOR="10.1.1.1"))


@pytest.mark.parametrize("way", WAYS[:2], ids=lambda way: way.name)
def test_the_lockout_page_says_when_to_come_back(way, merchant):
    for _ in range(LIMIT):
        response = way.attempt(merchant.email, "wrong guess")
    page = response.content.decode()
    assert response.status_code == 429 and response["Retry-After"] == "600"
    assert "Sign-in paused" in page and "10\xa0minutes" in page
    assert "even the right password is refused" in page
    assert 'href="/account/password-reset/"' in page
    assert response["Cache-Control"] == "private, no-store"
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_a_login_that_is_not_locked_out_keeps_the_usual_form_error(merchant):
    response = Way("account").attempt(merchant.email, "wrong guess")
    assert response.status_code == 200
    assert "Please enter a correct email address and password" in response.content.decode()


def test_failures_are_kept_in_the_database_without_the_password(merchant):
    Way("account").attempt(merchant.email, "my-secret-guess")
    (attempt,) = AccessAttempt.objects.all()
    assert (attempt.username, attempt.ip_address) == (merchant.email, HOME)
    assert "my-secret-guess" not in attempt.post_data


def test_the_admin_lists_the_failed_attempts_so_a_merchant_can_lift_a_lockout(
    admin_client, merchant
):
    for _ in range(LIMIT):
        Way("account").attempt(merchant.email, "wrong guess")
    index = admin_client.get("/admin/")
    menu = {
        f"{a['app_label']}.{m['object_name']}"
        for a in index.context["app_list"]
        for m in a["models"]
    }
    # The attempts, not the logs this configuration never writes.
    assert "axes.AccessAttempt" in menu
    assert not {"axes.AccessLog", "axes.AccessFailureLog"} & menu
    listing = admin_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and merchant.email in listing.content.decode()
    AccessAttempt.objects.filter(username=merchant.email).delete()  # the admin's delete action
    assert Way("account").admitted(Way("account").attempt(merchant.email, PASSWORD))
