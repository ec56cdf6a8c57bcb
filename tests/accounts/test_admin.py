"""API keys in the back office: the raw key is shown once, the hash never."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from tests import factories
from tests.downloads.admin.conftest import _fast_passwords, action, messages_of  # noqa: F401

# _fast_passwords is imported for its autouse: the back-office tests' fast password hasher,
# since admin_client's superuser is made per test.
pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_apikey_add")
CHANGELIST = reverse("admin:accounts_apikey_changelist")
RAW_KEY = re.compile(r"dd_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def create_key(client, name="Storefront sync", scope="read"):
    response = client.post(ADD, {"name": name, "scope": scope}, follow=True)
    assert response.status_code == 200
    return response


def test_creating_a_key_shows_the_raw_key_once_and_it_authenticates(admin_client):
    response = create_key(admin_client)
    shown = RAW_KEY.findall(response.content.decode())
    assert len(shown) == 1
    key = ApiKey.objects.get()
    assert (key.name, key.scope) == ("Storefront sync", "read")
    assert shown[0].startswith(f"dd_{key.prefix}_")
    # A client without the admin's session: the key alone gets in.
    api = Client().get("/api/v1/products", HTTP_AUTHORIZATION=f"Bearer {shown[0]}")
    assert api.status_code == 200
    assert Client().get("/api/v1/products").status_code == 401
    # Never again: not on the list, not on the key's page.
    for url in (CHANGELIST, reverse("admin:accounts_apikey_change", args=[key.pk])):
        assert not RAW_KEY.search(admin_client.get(url).content.decode())


def test_the_hash_is_never_displayed(admin_client):
    create_key(admin_client)
    key = ApiKey.objects.get()
    pages = [
        CHANGELIST,
        reverse("admin:accounts_apikey_change", args=[key.pk]),
        reverse("admin:accounts_apikey_history", args=[key.pk]),
    ]
    for url in pages:
        assert key.hashed_secret not in admin_client.get(url).content.decode()


def test_the_key_records_who_created_it(admin_client, admin_user):
    create_key(admin_client)
    assert ApiKey.objects.get().created_by == admin_user


def test_revoke_action_revokes_active_keys(admin_client):
    active, _ = factories.api_key(name="active")
    revoked, _ = factories.api_key(name="revoked")
    admin_client.post(CHANGELIST, action("revoke", [revoked], apply="1"))
    response = admin_client.post(CHANGELIST, action("revoke", [active, revoked], apply="1"))
    assert messages_of(response) == ["Revoked 1 API key."]
    active.refresh_from_db()
    assert active.revoked_at is not None


def test_revoking_keys_asks_for_confirmation_before_it_takes_effect(admin_client):
    key, _ = factories.api_key(name="storefront")
    page = admin_client.post(CHANGELIST, action("revoke", [key]))
    assert page.status_code == 200
    assert 'class="destructive" value="Yes, revoke"' in page.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_groups_are_not_in_the_menu_nor_on_the_user_form(admin_client):
    index = admin_client.get(reverse("admin:index"))
    names = {model["object_name"] for app in index.context["app_list"] for model in app["models"]}
    assert "Group" not in names
    assert admin_client.get("/admin/auth/group/").status_code == 404
    user = factories.UserFactory()
    form = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert 'name="groups"' not in form.content.decode()


def test_keys_are_revoked_not_deleted(admin_client):
    key, _ = factories.api_key()
    url = reverse("admin:accounts_apikey_delete", args=[key.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
