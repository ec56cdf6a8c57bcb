"""Licence keys in the back office: the list (columns, status badge, activations), filters by
status, product and disabled, search by key as typed, email or order number; bulk disable and
enable; the change page's limit, expiry and disabled through license_key_update, and
deactivating instances through license_instance_delete; never added or deleted here."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from downloads.admin.licences import key_search_prefix
from downloads.errors import ServiceError
from downloads.models import LicenseInstance, LicenseKey
from downloads.services.licences import license_key_activate
from downloads.services.orders import LineInput
from tests import factories
from tests.downloads.admin.conftest import action, licence_order, messages_of, paid_order

pytestmark = pytest.mark.django_db

KEYS = reverse("admin:downloads_licensekey_changelist")


def change_url(key) -> str:
    return reverse("admin:downloads_licensekey_change", args=[key.pk])


def listed(client, **params) -> set:
    response = client.get(KEYS, params)
    assert response.status_code == 200
    return {key.pk for key in response.context["cl"].result_list}


def cell(html: str, key, field: str) -> str:
    """The text of one column in the row of `key` on the list."""
    row = re.search(rf'<tr>(?:(?!</tr>).)*value="{key.pk}"(?:(?!</tr>).)*</tr>', html, re.S)
    assert row, key
    match = re.search(rf'<t[dh] class="field-{field}[^"]*">(.*?)</t[dh]>', row.group(0), re.S)
    assert match, field
    return match.group(1).strip()


def activate(key, *names):
    for name in names:
        license_key_activate(key_text=key.key, instance_name=name)
    key.refresh_from_db()
    return key


@pytest.fixture
def keys(db):
    """A key in each status, each on its own order: inactive, active (2 of 3 activations),
    expired, disabled."""
    now = timezone.now()
    inactive = licence_order(email="ann@example.com").license_keys.get()
    active = activate(licence_order(email="bob@example.com").license_keys.get(), "Laptop", "Desk")
    expired = licence_order().license_keys.get()
    LicenseKey.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=1))
    disabled = licence_order().license_keys.get()
    LicenseKey.objects.filter(pk=disabled.pk).update(disabled_at=now)
    return {"inactive": inactive, "active": active, "expired": expired, "disabled": disabled}


def key_form(key, **fields) -> dict:
    """The POST body of a key's change page: its limits as they are, with `fields` changed,
    and its instances (none deactivated unless `deactivate` names them)."""
    deactivate = fields.pop("deactivate", ())
    instances = list(key.instances.all())
    data = {
        "activation_limit": "" if key.activation_limit is None else str(key.activation_limit),
        "expires_at_0": "",
        "expires_at_1": "",
        "instances-TOTAL_FORMS": str(len(instances)),
        "instances-INITIAL_FORMS": str(len(instances)),
        "instances-MIN_NUM_FORMS": "0",
        "instances-MAX_NUM_FORMS": "0",
        **({"disabled": "on"} if key.disabled_at else {}),
    }
    for index, instance in enumerate(instances):
        data[f"instances-{index}-id"] = str(instance.pk)
        data[f"instances-{index}-license_key"] = str(key.pk)
        if instance in deactivate:
            data[f"instances-{index}-deactivate"] = "on"
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


# --- The list ---------------------------------------------------------------------------------


class TestList:
    def test_shows_key_status_product_order_email_activations_and_dates(self, admin_client, keys):
        active = keys["active"]
        html = admin_client.get(KEYS).content.decode()
        assert cell(html, active, "key_display") == (
            f'<a href="{change_url(active)}"><code class="license-key">{active.key}</code></a>'
        )
        assert cell(html, active, "status_badge") == (
            '<span class="license-status license-status-active">Active</span>'
        )
        assert cell(html, active, "product_display") == active.product.name
        order_url = reverse("admin:downloads_order_change", args=[active.order.pk])
        assert cell(html, active, "order_link") == f'<a href="{order_url}">{active.order}</a>'
        assert cell(html, active, "email") == "bob@example.com"
        assert cell(html, active, "activations") == "2 of 3"
        assert cell(html, active, "expires") == "never"
        assert cell(html, keys["expired"], "expires") not in ("", "never", "-")
        assert cell(html, active, "created_at") not in ("", "-")

    @pytest.mark.parametrize("status", ["inactive", "active", "expired", "disabled"])
    def test_each_status_has_its_own_badge(self, admin_client, keys, status):
        html = admin_client.get(KEYS).content.decode()
        assert f'license-status-{status}">{status.title()}</span>' in cell(
            html, keys[status], "status_badge"
        )

    def test_an_unlimited_key_shows_its_usage_as_unlimited(self, admin_client):
        product = factories.ProductFactory(license_keys=True, license_activation_limit=None)
        key = activate(licence_order(product).license_keys.get(), "Laptop", "Desk")
        assert cell(admin_client.get(KEYS).content.decode(), key, "activations") == "2 (unlimited)"

    def test_a_keys_variant_is_named_with_its_product(self, admin_client):
        variant = factories.VariantFactory(
            name="Team", product__license_keys=True, product__name="Editor"
        )
        key = paid_order(LineInput(product=variant.product, variant=variant)).license_keys.get()
        assert cell(admin_client.get(KEYS).content.decode(), key, "product_display") == (
            "Editor (Team)"
        )


class TestFilters:
    @pytest.mark.parametrize("status", ["inactive", "active", "expired", "disabled"])
    def test_the_status_filter_picks_the_keys_in_that_status(self, admin_client, keys, status):
        assert listed(admin_client, status=status) == {keys[status].pk}

    def test_an_unknown_status_filters_nothing(self, admin_client, keys):
        assert listed(admin_client, status="lost") == {key.pk for key in keys.values()}

    def test_the_disabled_filter_picks_disabled_keys_or_the_others(self, admin_client, keys):
        assert listed(admin_client, disabled="yes") == {keys["disabled"].pk}
        assert listed(admin_client, disabled="no") == {
            keys[status].pk for status in ("inactive", "active", "expired")
        }

    def test_the_product_filter_offers_products_with_keys_and_picks_theirs(self, admin_client):
        first, second = licence_order(), licence_order(quantity=2)
        factories.ProductFactory(name="Sells no keys")
        response = admin_client.get(KEYS)
        product_filter = next(
            spec for spec in response.context["cl"].filter_specs if spec.title == "product"
        )
        offered = {name for _, name in product_filter.lookup_choices}
        assert offered == {first.lines.get().product.name, second.lines.get().product.name}
        product = second.lines.get().product
        assert listed(admin_client, product__id__exact=str(product.pk)) == set(
            second.license_keys.values_list("pk", flat=True)
        )


class TestSearch:
    def test_a_key_typed_in_lower_case_with_spaces_is_found(self, admin_client, keys):
        key = keys["active"]
        typed = key.key.lower().replace("-", " ")
        assert listed(admin_client, q=typed) == {key.pk}

    def test_a_key_read_aloud_with_o_for_zero_is_found(self, admin_client):
        key = licence_order().license_keys.get()
        LicenseKey.objects.filter(pk=key.pk).update(key="0011AAA-BBBBBBB-CCCCCCC-DDDDDDD")
        assert listed(admin_client, q="ooIl aaa bbbbbbb ccccccc ddddddd") == {key.pk}

    def test_the_first_characters_of_a_key_find_it(self, admin_client, keys):
        key = keys["expired"]
        start = key.key.replace("-", "")[:9].lower()
        assert listed(admin_client, q=start) == {key.pk}
        assert listed(admin_client, q=key.key[:8]) == {key.pk}

    def test_by_the_orders_email_and_number(self, admin_client, keys):
        assert listed(admin_client, q="ann@example") == {keys["inactive"].pk}
        number = keys["active"].order.number
        assert listed(admin_client, q=str(number)) == {keys["active"].pk}

    def test_a_term_that_is_no_key_email_or_number_finds_nothing(self, admin_client, keys):
        assert listed(admin_client, q="no such thing") == set()
        assert listed(admin_client, q="UUUU-UUUU") == set()

    @pytest.mark.parametrize(
        "typed, prefix",
        [
            ("abcd", "ABCD"),
            ("abc defg h", "ABCDEFG-H"),
            ("ABCDEFG-HJKMNPQ", "ABCDEFG-HJKMNPQ"),
            (" oil1 ", "0111"),
            ("abc", None),  # too short to tell a key from a word
            ("abcu", None),  # U is not in a key's alphabet
            ("a" * 29, None),  # longer than a key
            ("bob@example.com", None),
        ],
    )
    def test_key_search_prefix_reads_the_start_of_a_key_as_typed(self, typed, prefix):
        assert key_search_prefix(typed) == prefix

    def test_a_whole_key_is_its_own_prefix(self):
        key = "0123456-789ABCD-EFGHJKM-NPQRSTV"
        assert key_search_prefix(key.lower().replace("-", " ")) == key


# --- Bulk actions -----------------------------------------------------------------------------


class TestActions:
    def test_disable_changes_exactly_the_chosen_keys_and_reports_counts(self, admin_client, keys):
        chosen = [keys["inactive"], keys["active"], keys["disabled"]]
        before = LicenseKey.objects.get(pk=keys["disabled"].pk).disabled_at
        response = admin_client.post(KEYS, action("disable", chosen, apply="1"))
        assert response.status_code == 302
        assert messages_of(response) == ["Disabled 2 licence keys. 1 was already disabled."]
        disabled = set(LicenseKey.objects.filter(disabled_at__isnull=False).values_list("pk"))
        assert disabled == {(key.pk,) for key in chosen}
        # the key already disabled keeps the time it was disabled at; the other is untouched
        assert LicenseKey.objects.get(pk=keys["disabled"].pk).disabled_at == before
        assert LicenseKey.objects.get(pk=keys["expired"].pk).disabled_at is None

    def test_disable_asks_for_confirmation_before_it_takes_effect(self, admin_client, keys):
        page = admin_client.post(KEYS, action("disable", [keys["active"]]))
        assert page.status_code == 200
        assert 'class="destructive" value="Yes, disable"' in page.content.decode()
        assert not LicenseKey.objects.filter(pk=keys["active"].pk, disabled_at__isnull=False)

    def test_enable_changes_exactly_the_chosen_keys_and_reports_counts(self, admin_client, keys):
        LicenseKey.objects.update(disabled_at=timezone.now())
        LicenseKey.objects.filter(pk=keys["active"].pk).update(disabled_at=None)
        chosen = [keys["inactive"], keys["active"], keys["expired"]]
        response = admin_client.post(KEYS, action("enable", chosen))
        assert messages_of(response) == ["Enabled 2 licence keys. 1 was already enabled."]
        enabled = set(LicenseKey.objects.filter(disabled_at__isnull=True).values_list("pk"))
        assert enabled == {(key.pk,) for key in chosen}

    def test_disabling_keys_listed_by_status_counts_them_before_they_leave_it(
        self, admin_client, keys
    ):
        second = activate(licence_order().license_keys.get(), "Laptop")
        chosen = [keys["active"], second]
        response = admin_client.post(KEYS + "?status=active", action("disable", chosen, apply="1"))
        assert messages_of(response) == ["Disabled 2 licence keys."]
        assert listed(admin_client, status="disabled") == {
            keys["disabled"].pk,
            keys["active"].pk,
            second.pk,
        }

    def test_enabled_keys_activate_again_and_disabled_ones_do_not(self, admin_client, keys):
        key = keys["inactive"]
        admin_client.post(KEYS, action("disable", [key], apply="1"))
        with pytest.raises(ServiceError) as refused:
            license_key_activate(key_text=key.key, instance_name="Laptop")
        assert refused.value.code == "license_key.disabled"
        admin_client.post(KEYS, action("enable", [key]))
        license_key_activate(key_text=key.key, instance_name="Laptop")
        key.refresh_from_db()
        assert key.activation_usage == 1

    def test_keys_are_never_added_or_deleted_here(self, admin_client, keys):
        key = keys["inactive"]
        assert admin_client.get(reverse("admin:downloads_licensekey_add")).status_code == 403
        delete = reverse("admin:downloads_licensekey_delete", args=[key.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        admin_client.post(KEYS, action("delete_selected", [key], post="yes"))
        assert LicenseKey.objects.filter(pk=key.pk).exists()
        choices = admin_client.get(KEYS).context["action_form"].fields["action"].choices
        assert {name for name, _ in choices} == {"", "disable", "enable"}


# --- The change page --------------------------------------------------------------------------


class TestChangePage:
    def test_only_the_limit_expiry_and_disabled_can_be_changed(self, admin_client, keys):
        response = admin_client.get(change_url(keys["active"]))
        assert set(response.context["adminform"].form.fields) == {
            "activation_limit",
            "expires_at",
            "disabled",
        }
        html = response.content.decode()
        assert "2 of 3" in html and keys["active"].key in html and "bob@example.com" in html
        instances = response.context["inline_admin_formsets"][0]
        assert not instances.has_add_permission
        assert set(instances.formset.forms[0].fields) == {"id", "license_key", "deactivate"}

    def test_the_limit_expiry_and_disabled_are_saved_through_the_service(self, admin_client, keys):
        key = keys["active"]
        response = admin_client.post(
            change_url(key),
            key_form(
                key,
                activation_limit="5",
                expires_at_0="2031-03-04",
                expires_at_1="12:00:00",
                disabled="on",
            ),
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        key.refresh_from_db()
        assert key.activation_limit == 5
        assert (key.expires_at.year, key.expires_at.month, key.expires_at.day) == (2031, 3, 4)
        assert key.disabled_at is not None and key.status == "disabled"
        admin_client.post(change_url(key), key_form(key, activation_limit="", disabled=None))
        key.refresh_from_db()
        assert (key.activation_limit, key.disabled_at) == (None, None)

    def test_a_limit_below_the_usage_shows_the_error_on_the_field_and_changes_nothing(
        self, admin_client, keys
    ):
        key = keys["active"]
        response = admin_client.post(
            change_url(key), key_form(key, activation_limit="1", disabled="on")
        )
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["activation_limit"] == [
            "The key has more activations than that limit; deactivate instances first."
        ]
        key.refresh_from_db()
        assert (key.activation_limit, key.activation_usage, key.disabled_at) == (3, 2, None)

    def test_a_limit_of_zero_is_refused_by_the_service(self, admin_client, keys):
        key = keys["inactive"]
        response = admin_client.post(change_url(key), key_form(key, activation_limit="0"))
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["activation_limit"] == [
            "activation_limit must be at least 1, or null for unlimited."
        ]
        key.refresh_from_db()
        assert key.activation_limit == 3

    def test_deactivating_an_instance_drops_the_usage_by_one(self, admin_client, keys):
        key = keys["active"]
        laptop = key.instances.get(name="Laptop")
        response = admin_client.post(change_url(key), key_form(key, deactivate=[laptop]))
        assert response.status_code == 302
        key.refresh_from_db()
        assert key.activation_usage == 1
        assert list(key.instances.values_list("name", flat=True)) == ["Desk"]
        # the activation was given back: the key takes one more
        license_key_activate(key_text=key.key, instance_name="Tablet")
        license_key_activate(key_text=key.key, instance_name="Phone")
        key.refresh_from_db()
        assert key.activation_usage == 3

    def test_deactivating_and_lowering_the_limit_to_what_is_left_is_one_save(
        self, admin_client, keys
    ):
        key = keys["active"]
        desk = key.instances.get(name="Desk")
        response = admin_client.post(
            change_url(key), key_form(key, activation_limit="1", deactivate=[desk])
        )
        assert response.status_code == 302
        key.refresh_from_db()
        assert (key.activation_limit, key.activation_usage) == (1, 1)

    def test_a_refused_limit_keeps_the_instances_the_same_save_deactivated(
        self, admin_client, keys
    ):
        key = keys["active"]
        desk = key.instances.get(name="Desk")
        response = admin_client.post(
            change_url(key), key_form(key, activation_limit="0", deactivate=[desk])
        )
        assert response.status_code == 200
        key.refresh_from_db()
        assert key.activation_usage == 2 and key.instances.count() == 2

    @pytest.mark.parametrize("instances", [1, 20])
    def test_the_change_page_takes_constant_queries(
        self, admin_client, django_assert_num_queries, instances
    ):
        product = factories.ProductFactory(license_keys=True, license_activation_limit=None)
        key = activate(
            licence_order(product).license_keys.get(), *(f"PC {n}" for n in range(instances))
        )
        admin_client.get(change_url(key))  # the process's content-type cache, filled once
        # session, user, the key with its order, line, product and variant, its instances
        with django_assert_num_queries(4):
            response = admin_client.get(change_url(key))
        assert response.status_code == 200
        assert LicenseInstance.objects.filter(license_key=key).count() == instances
