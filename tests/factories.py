"""factory-boy factories for the domain. Media factories store real bytes in the storage."""

from datetime import timedelta

import factory
from django.core.files.base import ContentFile
from django.utils import timezone

from accounts.models import ApiKey, User
from downloads import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"buyer{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(UserFactory):
    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True
    is_superuser = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Product

    name = factory.Sequence(lambda n: f"Product {n}")
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    vendor = "Demo Press"
    tags = factory.LazyFunction(lambda: ["books"])
    price = 2500


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Variant

    product = factory.SubFactory(ProductFactory)
    name = factory.Sequence(lambda n: f"Variant {n}")
    sku = factory.Sequence(lambda n: f"VAR-{n}")
    price = 1500


class MediaFactory(factory.django.DjangoModelFactory):
    """A stored file; pass `content=b"..."` and `filename=` to choose the bytes and name."""

    class Meta:
        model = models.Media
        exclude = ["content"]

    content = b"%PDF-1.4 demo bytes\n"
    filename = factory.Sequence(lambda n: f"file {n}.pdf")
    content_type = "application/pdf"
    byte_size = factory.LazyAttribute(lambda o: len(o.content))
    file = factory.LazyAttribute(lambda o: ContentFile(o.content, name=o.filename))


class DownloadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Download

    product = factory.SubFactory(ProductFactory)
    media = factory.SubFactory(MediaFactory)


class LinkDownloadFactory(DownloadFactory):
    media = None
    url = factory.Sequence(lambda n: f"https://files.example.com/{n}.mp3")
    name = factory.Sequence(lambda n: f"Link {n}")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Order

    number = factory.Sequence(lambda n: 5000 + n)
    email = factory.Sequence(lambda n: f"order{n}@example.com")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    name = factory.LazyAttribute(lambda o: o.product.name)
    sku = factory.LazyAttribute(lambda o: o.product.sku)


class GrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.DownloadGrant

    order = factory.SubFactory(OrderFactory, status=models.Order.Status.PAID)
    line = factory.SubFactory(OrderLineFactory, order=factory.SelfAttribute("..order"))
    download = factory.LazyAttribute(
        lambda o: DownloadFactory(product=o.line.product if o.line else None)
    )
    download_limit = 5


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.DownloadEvent

    grant = factory.SubFactory(GrantFactory)
    at = factory.LazyFunction(timezone.now)
    ip = "203.0.113.7"
    user_agent = "pytest"
    outcome = models.DownloadEvent.Outcome.SERVED


def api_key(scope=ApiKey.Scope.WRITE, name="test key"):
    """Create an API key; return (key, raw)."""
    from accounts.services import api_key_create

    return api_key_create(name=name, scope=scope)


def paid_order_with_files(lines=1, *, email="buyer@example.com", attached=1, **order_fields):
    """A paid order with `lines` lines, each with one file grant (every third one a link),
    and `attached` files attached to the order itself."""
    now = timezone.now()
    order = OrderFactory(email=email, status=models.Order.Status.PAID, paid_at=now, **order_fields)
    for position in range(lines):
        variant = VariantFactory(external_id=7000 + position)
        line = OrderLineFactory(
            order=order,
            product=variant.product,
            variant=variant,
            variant_name=variant.name,
            position=position,
        )
        factory = LinkDownloadFactory if position % 3 == 2 else DownloadFactory
        GrantFactory(
            order=order,
            line=line,
            download=factory(product=variant.product),
            download_limit=10,
            download_count=position % 4,
        )
    for _ in range(attached):
        download = DownloadFactory(product=None)
        order.downloads.add(download)
        GrantFactory(order=order, line=None, download=download, download_limit=None)
    return order


# Every state a grant can be in, as field values (timedeltas are from `now`): the tests that
# prove each form of the availability rule agrees with the others walk all of them.
GRANT_STATES = {
    "available": {},
    "unlimited": {"download_limit": None, "download_count": 40},
    "one left": {"download_limit": 3, "download_count": 2},
    "used up": {"download_limit": 3, "download_count": 3},
    "over a lowered limit": {"download_limit": 2, "download_count": 3},
    "revoked": {"revoked_at": timedelta(seconds=-5)},
    "expired": {"expires_at": timedelta(seconds=-1)},
    "expires later": {"expires_at": timedelta(hours=1)},
    "expired and used up": {"expires_at": timedelta(seconds=-1), "download_count": 10},
    "revoked and used up": {"revoked_at": timedelta(0), "download_limit": 1, "download_count": 1},
    "revoked and expired": {"revoked_at": timedelta(0), "expires_at": timedelta(seconds=-1)},
}


def grant_in_state(state: str, now):
    """A grant in one of GRANT_STATES at `now`."""
    fields = {
        key: now + value if isinstance(value, timedelta) else value
        for key, value in GRANT_STATES[state].items()
    }
    return GrantFactory(**fields)


def licensed_order(quantity=1, *, email="buyer@example.com", **product_fields):
    """A paid order (through the services, no email) of `quantity` units of a product that
    issues licence keys (activation limit 3 unless `product_fields` say otherwise): its keys
    are `order.license_keys`."""
    from downloads.services.orders import LineInput, order_create

    product_fields.setdefault("license_activation_limit", 3)
    product = ProductFactory(license_keys=True, **product_fields)
    return order_create(
        email=email,
        lines=[LineInput(product=product, quantity=quantity)],
        status=models.Order.Status.PAID,
        send_email=False,
    )


def one_of_each(*, instance_name: str = "Tests") -> dict[str, str]:
    """One object of each API resource, linked as a store links them, by resource name (and
    the path parameters that name them otherwise): for tests that call every operation and
    must reach real objects."""
    from downloads.services.licences import license_key_activate

    customer = UserFactory(password=None)
    order = OrderFactory(status=models.Order.Status.PAID, customer=customer, email=customer.email)
    line = OrderLineFactory(order=order, variant=None)
    variant = VariantFactory(product=line.product)
    grant = GrantFactory(order=order, line=line)
    event = EventFactory(grant=grant)
    key = licensed_order().license_keys.get()
    instance = license_key_activate(key_text=key.key, instance_name=instance_name).instance
    return {
        "products": str(line.product_id),
        "variants": str(variant.pk),
        "media": str(grant.download.media_id),
        "downloads": str(grant.download_id),
        "orders": str(order.pk),
        "grants": str(grant.pk),
        "events": str(event.pk),
        "customers": str(customer.pk),
        "license_keys": str(key.pk),
        "license_instances": str(instance.pk),
        "download_id": str(grant.download_id),
        "license_key_id": str(key.pk),
    }
