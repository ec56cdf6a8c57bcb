"""Password reset, which is also how a buyer who never registered chooses a password."""

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import User
from tests import factories

pytestmark = pytest.mark.django_db

RESET = "/account/password-reset/"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()
    yield
    cache.clear()


def reset_link(message) -> str:
    match = re.search(r"http://testserver(/account/reset/[^/\s]+/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def choose_password(client, link: str, password: str):
    form = client.get(link, follow=True)
    assert form.status_code == 200
    assert "Choose a password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    return client.post(set_url, {"new_password1": password, "new_password2": password})


def test_a_buyer_who_never_registered_sets_a_password_with_the_order_email(client):
    order = factories.paid_order_with_files(lines=1, email="guest@example.com")
    assert not User.objects.filter(email="guest@example.com").exists()

    response = client.post(RESET, {"email": "Guest@Example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    (message,) = mail.outbox
    assert message.to == ["guest@example.com"]
    assert "choose your password" in message.subject
    user = User.objects.get(email="guest@example.com")
    assert not user.has_usable_password()  # nobody can sign in before following the link
    order.refresh_from_db()
    assert order.customer == user

    done = choose_password(client, reset_link(message), "a fresh long passphrase 42")
    assert done.status_code == 302
    # A request, as the login protection (django-axes) needs one for every password check.
    assert client.login(
        request=HttpRequest(), username="guest@example.com", password="a fresh long passphrase 42"
    )
    orders = client.get(reverse("accounts:order_list")).content.decode()
    assert f"#{order.number}" in orders


def test_the_link_works_once(client):
    factories.paid_order_with_files(lines=1, email="guest@example.com")
    client.post(RESET, {"email": "guest@example.com"})
    link = reset_link(mail.outbox[0])
    choose_password(client, link, "a fresh long passphrase 42")
    again = client.get(link, follow=True)
    assert "This link has expired" in again.content.decode()


def test_an_address_without_orders_gets_no_account_no_email_and_the_same_answer(client):
    factories.paid_order_with_files(lines=1, email="guest@example.com")
    response = client.post(RESET, {"email": "stranger@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert mail.outbox == []
    assert not User.objects.filter(email="stranger@example.com").exists()


def test_a_registered_customer_gets_the_usual_reset(client, customer):
    client.post(RESET, {"email": customer.email})
    (message,) = mail.outbox
    assert message.to == [customer.email]
    assert User.objects.filter(email=customer.email).count() == 1


def test_staff_without_a_usable_password_and_inactive_users_are_not_unlocked(client):
    staff = factories.StaffFactory(email="ops@example.com")
    staff.set_unusable_password()
    staff.save()
    inactive = factories.UserFactory(email="gone@example.com", is_active=False)
    factories.paid_order_with_files(lines=1, email=inactive.email)
    client.post(RESET, {"email": staff.email})
    client.post(RESET, {"email": inactive.email})
    assert mail.outbox == []


def test_the_email_links_to_the_configured_site_not_the_request_host(client, settings):
    settings.DOWNLOADS_SITE_URL = "https://shop.example.com"
    factories.paid_order_with_files(lines=1, email="guest@example.com")
    client.post(RESET, {"email": "guest@example.com"}, HTTP_HOST="localhost")
    assert "https://shop.example.com/account/reset/" in mail.outbox[0].body


def test_one_email_per_address_per_minute(client):
    factories.paid_order_with_files(lines=1, email="guest@example.com")
    for _ in range(3):
        assert client.post(RESET, {"email": "guest@example.com"}).status_code == 302
    assert len(mail.outbox) == 1


def test_the_form_has_a_labelled_email_field(client):
    html = client.get(RESET).content.decode()
    assert '<label for="id_email">Email</label>' in html
    assert 'autocomplete="email"' in html
