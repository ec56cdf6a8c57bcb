"""The catalogue through the merchant API: products, their variants, and downloads
(SureCart's download: a media file or an external URL on a product, a variant, or kept for
attaching to single orders), with `expand[]`. (SureCart's wrapped bodies are read for every
resource by views/base.py.)"""

from rest_framework import status

from downloads.models import Download, Product, Variant
from downloads.services.catalogue import (
    download_create,
    download_delete,
    download_update,
    product_create,
    product_delete,
    product_update,
    variant_create,
    variant_delete,
    variant_update,
)

from .. import filters
from ..exceptions import QueryParameterError
from ..schema import api_docs
from ..serializers import catalogue as s
from .base import ApiViewSet


@api_docs("product", s.ProductSerializer, s.ProductInputSerializer, delete=True)
class ProductViewSet(ApiViewSet):
    """Products: what is sold, at `price` (minor units of the store's currency). Limits and
    expiry left null use the store defaults."""

    object_name = "product"
    queryset = Product.objects.all()
    filterset_class = filters.ProductFilterSet
    output_serializer_class = s.ProductSerializer
    input_serializer_class = s.ProductInputSerializer
    search_fields = ("name", "sku", "vendor", "description")
    sort_fields = {
        "created_at": "created_at",
        "updated_at": "updated_at",
        "name": "name",
        "sku": "sku",
        "price": "price",
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request):
        product = product_create(**self.validated(s.ProductInputSerializer))
        return self.render(product, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        product = self.get_object()
        data = self.validated(s.ProductInputSerializer, partial=True)
        return self.render(product_update(product=product, **data))

    def destroy(self, request, pk=None):
        product_delete(product=self.get_object())
        return self.deleted(pk)


@api_docs(
    "variant", s.VariantSerializer, s.VariantInputSerializer, s.VariantUpdateSerializer, delete=True
)
class VariantViewSet(ApiViewSet):
    """Variants: the purchasable options of a product; prices in minor units."""

    object_name = "variant"
    queryset = Variant.objects.select_related("product")  # effective_price reads it
    filterset_class = filters.VariantFilterSet
    output_serializer_class = s.VariantSerializer
    input_serializer_class = s.VariantInputSerializer
    update_serializer_class = s.VariantUpdateSerializer
    search_fields = ("name", "sku")
    sort_fields = {
        "created_at": "created_at",
        "name": "name",
        "position": "position",
        "price": "price",
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request):
        variant = variant_create(**self.validated(s.VariantInputSerializer))
        return self.render(variant, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        variant = self.get_object()
        data = self.validated(s.VariantUpdateSerializer, partial=True)
        return self.render(variant_update(variant=variant, **data))

    def destroy(self, request, pk=None):
        variant_delete(variant=self.get_object())
        return self.deleted(pk)


@api_docs(
    "download",
    s.DownloadSerializer,
    s.DownloadInputSerializer,
    delete=True,
    expand=s.DOWNLOAD_EXPANDABLE,
)
class DownloadViewSet(ApiViewSet):
    """Downloads (SureCart's download): a media file or an external URL, on a product, a
    variant, or kept for attaching to single orders."""

    object_name = "download"
    # variant__product: an expanded variant shows its effective_price.
    queryset = Download.objects.select_related("media", "product", "variant__product")
    filterset_class = filters.DownloadFilterSet
    output_serializer_class = s.DownloadSerializer
    input_serializer_class = s.DownloadInputSerializer
    expandable = s.DOWNLOAD_EXPANDABLE
    search_fields = ("name", "title", "url", "media__filename")
    sort_fields = {
        "created_at": "created_at",
        "updated_at": "updated_at",
        "name": "name",
        "position": "position",
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request is not None:
            context["expand"] = self.expand_fields()
        return context

    def expand_fields(self) -> set[str]:
        params = self.request.query_params
        wanted = {
            part.strip()
            for value in [*params.getlist("expand[]"), *params.getlist("expand")]
            for part in value.split(",")
            if part.strip()
        }
        if unknown := wanted - set(s.DOWNLOAD_EXPANDABLE):
            raise QueryParameterError(
                {"expand": [f"Cannot expand {', '.join(sorted(unknown))[:200]}."]},
                code="invalid_choice",
            )
        return wanted

    def create(self, request):
        download = download_create(**self.validated(s.DownloadInputSerializer))
        return self.render_fresh(download, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        download = self.get_object()
        data = self.validated(s.DownloadInputSerializer, partial=True)
        download_update(download=download, **data)
        return self.render_fresh(download)

    def destroy(self, request, pk=None):
        download_delete(download=self.get_object())
        return self.deleted(pk)
