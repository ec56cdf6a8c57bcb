"""Licence keys (services.licences): issued with the payment, one per unit; disabled by
refunds and disputes; activations taken only by the conditional UPDATE."""

from datetime import timedelta

import pytest
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import LicenseInstance, LicenseKey, Order, WebhookDelivery
from downloads.services.licences import (
    license_instance_delete,
    license_key_activate,
    license_key_deactivate,
    license_key_find,
    license_key_update,
    license_key_validate,
    license_keys_disable,
    license_keys_enable,
)
from downloads.services.orders import (
    LineInput,
    order_create,
    order_dispute,
    order_pay,
    order_refund,
)
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db


def licensed(limit=3, days=None, **kwargs):
    return factories.ProductFactory(
        license_keys=True, license_activation_limit=limit, license_expiry_days=days, **kwargs
    )


def order_of(*lines, status=Order.Status.PAID):
    return order_create(
        email="buyer@example.com", lines=list(lines), status=status, send_email=False
    )


class TestIssue:
    def test_paying_issues_one_key_per_unit_of_licence_products_only(self):
        app, book = licensed(limit=2, days=365), factories.ProductFactory()
        order = order_of(LineInput(product=app, quantity=3), LineInput(product=book))
        keys = list(order.license_keys.order_by("unit"))
        assert [key.unit for key in keys] == [1, 2, 3]
        assert {key.line.product_id for key in keys} == {app.pk}
        assert all(key.activation_limit == 2 for key in keys)
        paid_at = Order.objects.get(pk=order.pk).paid_at
        assert all(key.expires_at == paid_at + timedelta(days=365) for key in keys)
        assert len({key.key for key in keys}) == 3
        assert all(key.status == "inactive" for key in keys)

    def test_paying_again_issues_nothing_new(self):
        order = order_of(LineInput(product=licensed()), status=Order.Status.PENDING)
        assert not order.license_keys.exists()
        order_pay(order=order, send_email=False)
        first = list(order.license_keys.values_list("key", flat=True))
        order_pay(order=order, send_email=False)
        assert list(order.license_keys.values_list("key", flat=True)) == first
        assert len(first) == 1

    def test_keys_are_140_bits_in_four_groups_and_stored_with_their_digest(self):
        key = order_of(LineInput(product=licensed())).license_keys.get()
        groups = key.key.split("-")
        assert [len(group) for group in groups] == [7, 7, 7, 7]
        assert set("".join(groups)) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        assert len(key.key_hash) == 64 and key.key not in key.key_hash

    def test_an_unlimited_product_issues_unlimited_keys_that_never_expire(self):
        key = order_of(LineInput(product=licensed(limit=None))).license_keys.get()
        assert (key.activation_limit, key.expires_at, key.activations_left) == (None, None, None)

    def test_a_key_issued_emits_license_key_created(self):
        webhook_endpoint_create(
            url="https://hooks.example.com/", event_types=["license_key.created"]
        )
        key = order_of(LineInput(product=licensed())).license_keys.get()
        payload = WebhookDelivery.objects.get().payload["data"]
        assert (payload["object"], payload["key"], payload["status"]) == (
            "license_key",
            key.key,
            "inactive",
        )


class TestTakingAway:
    def test_refunding_a_line_disables_exactly_its_keys(self):
        app, other = licensed(), licensed()
        order = order_of(LineInput(product=app), LineInput(product=other))
        line = order.lines.get(product=app)
        order_refund(order=order, line_ids=[line.pk])
        assert list(order.license_keys.filter(disabled_at__isnull=False)) == list(
            line.license_keys.all()
        )
        assert order.license_keys.filter(disabled_at__isnull=True).count() == 1

    def test_refunding_units_disables_the_highest_units_first(self):
        app = licensed()
        order = order_of(LineInput(product=app, quantity=3))
        line = order.lines.get()
        order_refund(order=order, quantities={line.pk: 1}, amount=app.price)
        assert list(
            line.license_keys.filter(disabled_at__isnull=False).values_list("unit", flat=True)
        ) == [3]
        order_refund(order=order, quantities={line.pk: 2}, amount=2 * app.price)
        assert not line.license_keys.filter(disabled_at__isnull=True).exists()

    def test_a_whole_refund_and_a_dispute_disable_every_key(self):
        refunded = order_of(LineInput(product=licensed(), quantity=2))
        order_refund(order=refunded)
        disputed = order_of(LineInput(product=licensed()))
        order_dispute(order=disputed)
        for order in (refunded, disputed):
            keys = LicenseKey.objects.filter(order=order)
            assert keys.exists() and all(key.status == "disabled" for key in keys)

    def test_disabling_and_enabling_by_hand_changes_only_what_is_asked(self):
        order = order_of(LineInput(product=licensed(), quantity=2))
        first, second = order.license_keys.order_by("unit")
        assert license_keys_disable(keys=LicenseKey.objects.filter(pk=first.pk)) == 1
        assert license_keys_disable(keys=LicenseKey.objects.filter(pk=first.pk)) == 0
        first.refresh_from_db()
        second.refresh_from_db()
        assert (first.status, second.status) == ("disabled", "inactive")
        assert license_keys_enable(keys=order.license_keys.all()) == 1
        first.refresh_from_db()
        assert first.status == "inactive"


class TestActivation:
    @pytest.fixture
    def key(self):
        return order_of(LineInput(product=licensed(limit=2))).license_keys.get()

    def test_an_activation_takes_one_and_names_its_instance(self, key):
        answer = license_key_activate(key_text=key.key, instance_name=" Laptop ")
        assert (answer.key.activation_usage, answer.key.status) == (1, "active")
        assert answer.instance.name == "Laptop"
        assert LicenseInstance.objects.get().license_key_id == key.pk

    def test_the_limit_refuses_the_next_activation_and_keeps_the_count(self, key):
        license_key_activate(key_text=key.key, instance_name="One")
        license_key_activate(key_text=key.key, instance_name="Two")
        with pytest.raises(ServiceError) as exc:
            license_key_activate(key_text=key.key, instance_name="Three")
        assert exc.value.code == "license_key.limit_reached"
        key.refresh_from_db()
        assert key.activation_usage == 2 and LicenseInstance.objects.count() == 2

    def test_a_deactivation_gives_the_activation_back_and_reactivation_works(self, key):
        one = license_key_activate(key_text=key.key, instance_name="One").instance
        license_key_activate(key_text=key.key, instance_name="Two")
        answer = license_key_deactivate(key_text=key.key, instance_id=str(one.pk))
        assert answer.key.activation_usage == 1
        with pytest.raises(ServiceError) as exc:
            license_key_deactivate(key_text=key.key, instance_id=str(one.pk))
        assert exc.value.code == "license_instance.not_found"
        again = license_key_activate(key_text=key.key, instance_name="One again")
        assert again.key.activation_usage == 2

    def test_disabled_and_expired_keys_refuse_activations(self, key):
        license_keys_disable(keys=LicenseKey.objects.filter(pk=key.pk))
        with pytest.raises(ServiceError) as exc:
            license_key_activate(key_text=key.key, instance_name="x")
        assert exc.value.code == "license_key.disabled"
        license_keys_enable(keys=LicenseKey.objects.filter(pk=key.pk))
        LicenseKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=1))
        with pytest.raises(ServiceError) as exc:
            license_key_activate(key_text=key.key, instance_name="x")
        assert exc.value.code == "license_key.expired"
        key.refresh_from_db()
        assert key.activation_usage == 0

    def test_a_key_typed_loosely_is_found_and_garbage_is_not(self, key):
        loose = key.key.lower().replace("-", " ").replace("0", "o").replace("1", "l")
        assert license_key_find(key_text=loose) == key
        for garbage in ("", None, 42, "X" * 28, key.key[:-1] + "U", "\ud800", "a" * 10_000):
            assert license_key_find(key_text=garbage) is None

    def test_unknown_and_malformed_keys_are_the_same_error(self):
        errors = []
        for text in ("0000000-0000000-0000000-0000000", "not a key"):
            with pytest.raises(ServiceError) as exc:
                license_key_validate(key_text=text)
            errors.append((exc.value.code, exc.value.message))
        assert errors[0] == errors[1] == ("license_key.not_found", "license_key not found.")

    def test_validating_with_an_instance_checks_it_belongs_to_the_key(self, key):
        other = order_of(LineInput(product=licensed())).license_keys.get()
        mine = license_key_activate(key_text=key.key, instance_name="Mine").instance
        theirs = license_key_activate(key_text=other.key, instance_name="Theirs").instance
        assert license_key_validate(key_text=key.key, instance_id=str(mine.pk)).instance == mine
        for instance_id in (str(theirs.pk), "nope"):
            with pytest.raises(ServiceError) as exc:
                license_key_validate(key_text=key.key, instance_id=instance_id)
            assert exc.value.code == "license_instance.not_found"

    @pytest.mark.parametrize("name", ["", "   ", None, 7, "x" * 256])
    def test_an_instance_needs_a_name_of_sane_length(self, key, name):
        with pytest.raises(ServiceError) as exc:
            license_key_activate(key_text=key.key, instance_name=name)
        assert (exc.value.code, exc.value.attribute) == ("license_key.invalid", "instance_name")


class TestMerchantChanges:
    def test_the_limit_is_never_set_below_the_usage(self):
        key = order_of(LineInput(product=licensed(limit=3))).license_keys.get()
        license_key_activate(key_text=key.key, instance_name="One")
        license_key_activate(key_text=key.key, instance_name="Two")
        with pytest.raises(ServiceError) as exc:
            license_key_update(key=key, activation_limit=1)
        assert exc.value.code == "license_key.limit_below_usage"
        assert license_key_update(key=key, activation_limit=2).activation_limit == 2
        assert license_key_update(key=key, activation_limit=None).activations_left is None
        with pytest.raises(ServiceError) as exc:
            license_key_update(key=key, activation_limit=0)
        assert exc.value.code == "license_key.invalid"

    def test_expiry_and_disabled_are_set_and_cleared(self):
        key = order_of(LineInput(product=licensed())).license_keys.get()
        past = timezone.now() - timedelta(hours=1)
        assert license_key_update(key=key, expires_at=past).status == "expired"
        assert license_key_update(key=key, expires_at=None, disabled=True).status == "disabled"
        assert license_key_update(key=key, disabled=False).status == "inactive"

    def test_deleting_an_instance_gives_its_activation_back(self):
        key = order_of(LineInput(product=licensed())).license_keys.get()
        instance = license_key_activate(key_text=key.key, instance_name="One").instance
        assert license_instance_delete(instance=instance).activation_usage == 0
        assert not LicenseInstance.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_activations_with_a_limit_of_three_take_exactly_three(postgres_only):
    key = order_of(LineInput(product=licensed(limit=3))).license_keys.get()

    def activate(n):
        try:
            license_key_activate(key_text=key.key, instance_name=f"Machine {n}")
        except ServiceError as exc:
            return exc.code
        return "activated"

    outcomes = at_once(50, activate)
    assert outcomes.count("activated") == 3
    assert outcomes.count("license_key.limit_reached") == 47
    key.refresh_from_db()
    assert key.activation_usage == 3 and key.instances.count() == 3
