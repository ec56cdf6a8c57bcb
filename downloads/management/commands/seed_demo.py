import io
import zipfile

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse

from accounts.models import User
from downloads.emails import site_url
from downloads.models import Download, Order, Product, Variant
from downloads.services.media import media_create
from downloads.services.orders import LineInput, order_create

MERCHANT = ("merchant@example.com", "merchant-demo-password")
CUSTOMER = ("buyer@example.com", "buyer-demo-password")
DEMO_ORDER_NUMBER = 1001


def demo_pdf(title: str) -> bytes:
    """A small, valid one-page PDF with a line of text."""
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def demo_zip(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def api_commands(base: str) -> list[str]:
    """Shell commands that make an API key and call the API with it, as printed for pasting.

    They run with the environment of `make run` (DJANGO_DEBUG=1 when this runs in DEBUG): a
    manage.py command without it would stop at the missing production secret key.
    """
    prefix = "DJANGO_DEBUG=1 " if settings.DEBUG else ""
    return [
        f'export KEY="$({prefix}.venv/bin/python manage.py create_api_key --name demo)"',
        f'curl -sS -H "Authorization: Bearer $KEY" {base}/api/v1/products',
    ]


class Command(BaseCommand):
    help = "Load demo data (idempotent): a merchant, a customer, products with files, a paid order."

    def handle(self, *args, **options):
        with transaction.atomic():
            self._user(*MERCHANT, staff=True)
            self._user(*CUSTOMER, staff=False)
            guide = self._product(
                sku="GUIDE-1",
                external_id=7001,
                name="The Field Guide to Digital Goods",
                vendor="Demo Press",
                tags=["books", "ebooks"],
                price=1900,
                files=[("Field Guide (2nd edition).pdf", demo_pdf("The Field Guide"))],
                stamp=True,  # each buyer's copy carries their email (made by the worker)
            )
            icons = self._product(
                sku="ICONS-1",
                external_id=7002,
                name="Line Icon Pack",
                vendor="Demo Studio",
                tags=["design", "icons"],
                price=2900,
                files=[("line-icons.zip", demo_zip({"README.txt": "240 line icons, SVG."}))],
                download_limit=5,
            )
            commercial = Variant.objects.get_or_create(
                product=icons,
                sku="ICONS-1-COM",
                defaults={"name": "Commercial licence", "external_id": 70021, "price": 4900},
            )[0]
            Variant.objects.get_or_create(
                product=icons,
                sku="ICONS-1-PER",
                defaults={"name": "Personal licence", "external_id": 70022, "price": 2900},
            )
            if not Download.objects.filter(variant=commercial).exists():
                licence = media_create(
                    file=ContentFile(b"Commercial licence for Line Icon Pack.\n"),
                    filename="Commercial licence.txt",
                )
                Download.objects.create(product=icons, variant=commercial, media=licence)
            podcast = self._product(
                sku="SHOW-1",
                external_id=7003,
                name="Behind the Scenes: Episode 1",
                vendor="Demo Radio",
                tags=["audio"],
                price=0,
                files=[("show-notes.txt", b"Show notes for episode 1.\n")],
            )
            if not podcast.downloads.filter(url__isnull=False).exists():
                Download.objects.create(
                    product=podcast,
                    url="https://example.com/episode-1.mp3",
                    name="Episode 1 (streaming link)",
                )
            sketcher = self._product(
                sku="SKETCH-1",
                external_id=7004,
                name="Sketcher for macOS and Windows",
                vendor="Demo Software",
                tags=["software"],
                price=3900,
                files=[("Sketcher-setup.zip", demo_zip({"README.txt": "Sketcher 1.0 installer."}))],
                license_keys=True,
                license_activation_limit=3,
                license_expiry_days=365,
            )
            order = Order.objects.filter(number=DEMO_ORDER_NUMBER).first()
            if order is None:
                order = order_create(
                    email=CUSTOMER[0],
                    number=DEMO_ORDER_NUMBER,
                    lines=[
                        LineInput(product=guide),
                        LineInput(product=icons, variant=commercial),
                        LineInput(product=podcast),
                        LineInput(product=sketcher),
                    ],
                    status=Order.Status.PAID,
                    send_email=False,
                )
        base = site_url()
        self.stdout.write(
            "\n".join(
                [
                    "Demo data is ready.",
                    f"  Store home:       {base}{reverse('home')}",
                    f"  Store admin:      {base}{reverse('admin:index')}",
                    f"    merchant login: {MERCHANT[0]} / {MERCHANT[1]}",
                    f"  Buyer order page: {base}{reverse('accounts:order_detail', args=[order.access_token])}",
                    f"  Buyer account:    {base}{reverse('accounts:order_list')}",
                    f"    customer login: {CUSTOMER[0]} / {CUSTOMER[1]}",
                    f"  Storefront JSON:  {base}/api/v2/customer-account-orders?id={order.access_token}",
                    f"  API docs:         {base}/api/docs/",
                    f"  Media storage:    {'S3 bucket ' + settings.AWS_STORAGE_BUCKET_NAME if settings.AWS_STORAGE_BUCKET_NAME else settings.MEDIA_ROOT}",
                    "  Try the merchant API: paste these in this folder while the server runs:",
                    *(f"    {command}" for command in api_commands(base)),
                ]
            )
        )
        return None

    def _user(self, email, password, *, staff):
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email=email, password=password, is_staff=staff, is_superuser=staff
            )
        return user

    def _product(
        self,
        *,
        sku,
        external_id,
        name,
        vendor,
        tags,
        price,
        files,
        download_limit=None,
        stamp=False,
        **licensing,
    ):
        product, created = Product.objects.get_or_create(
            sku=sku,
            defaults={
                "name": name,
                "external_id": external_id,
                "vendor": vendor,
                "tags": tags,
                "price": price,
                "download_limit": download_limit,
                "description": f"Demo product: {name}.",
                **licensing,
            },
        )
        if created:
            for position, (filename, content) in enumerate(files):
                media = media_create(file=ContentFile(content), filename=filename)
                Download.objects.create(
                    product=product, media=media, position=position, stamp=stamp
                )
        return product
