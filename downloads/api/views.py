"""The merchant REST API (/api/v1/): thin viewsets. Each action validates its input with a
serializer, calls a service (writes) or a queryset with its joins (reads), and renders the
output serializer. Business rules live in downloads/services/, shared with the admin."""

import uuid

from django.conf import settings
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response

from accounts.models import User
from downloads.emails import site_url
from downloads.errors import ServiceError
from downloads.models import (
    Download,
    DownloadEvent,
    DownloadGrant,
    Media,
    MediaUpload,
    Order,
    OrderLine,
    Product,
    Variant,
)
from downloads.selectors import line_target
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
from downloads.services.grants import (
    grant_create,
    grant_delete,
    grant_extend,
    grant_update,
    grants_reset,
    grants_restore,
    grants_revoke,
)
from downloads.services.media import (
    media_create,
    media_delete,
    media_upload_complete,
    media_upload_receive,
    media_upload_start,
)
from downloads.services.orders import (
    LineInput,
    order_attach_downloads,
    order_cancel,
    order_create,
    order_detach_downloads,
    order_pay,
    order_refund,
    order_send_email,
)

from . import filters
from . import serializers as s
from .exceptions import (
    PayloadTooLarge,
    QueryParameterError,
    error_body,
    service_error_body,
    service_error_status,
)
from .pagination import ApiPagination
from .schema import api_docs
from .throttling import ApiKeyRateThrottle, rate_limit_headers

# A multipart body carries boundaries and part headers around the file.
MULTIPART_OVERHEAD = 1024 * 1024


class LimitedJSONParser(JSONParser):
    """JSON bodies are read whole into memory: refuse more than DATA_UPLOAD_MAX_MEMORY_SIZE."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
        return super().parse(stream, media_type, parser_context)


class ApiViewSet(viewsets.GenericViewSet):
    # What every resource shares: JSON in, the envelopes out, throttling with headers on
    # every answer, ids checked before they reach the database. (No docstring: subclasses'
    # docstrings describe their resource in the schema.)

    object_name = "object"
    parser_classes = [LimitedJSONParser]
    pagination_class = ApiPagination
    filter_backends = [filters.ApiFilterBackend, filters.SearchBackend, filters.SortBackend]
    throttle_classes = [ApiKeyRateThrottle]
    lookup_value_regex = "[^/]+"
    sort_fields = {"created_at": "created_at"}
    search_fields: tuple = ()
    output_serializer_class = None
    input_serializer_class = None
    update_serializer_class = None

    # --- request life cycle ---

    def perform_authentication(self, request):
        try:
            request.user  # noqa: B018 (authenticates)
        except exceptions.AuthenticationFailed:
            # Count failed keys too (by IP), so guessing keys is throttled like everything else.
            self.check_throttles(request)
            raise

    def check_permissions(self, request):
        # Throttle first, so forbidden requests are counted and get the rate-limit headers.
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        if getattr(request, "throttle_checked", False):
            return
        request.throttle_checked = True
        super().check_throttles(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                raise QueryParameterError(
                    {name.replace("\x00", ""): ["Null characters are not allowed."]},
                    code="null_characters_not_allowed",
                )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in rate_limit_headers(request).items():
            response[header] = value
        return response

    # --- helpers ---

    def get_serializer_class(self):
        if self.action in ("create",) and self.input_serializer_class:
            return self.input_serializer_class
        if self.action in ("update", "partial_update"):
            return self.update_serializer_class or self.input_serializer_class
        return self.output_serializer_class

    def parse_pk(self, value):
        try:
            return uuid.UUID(str(value))
        except ValueError:
            return None

    def get_object(self):
        pk = self.parse_pk(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field))
        instance = self.get_queryset().filter(pk=pk).first() if pk is not None else None
        if instance is None:
            raise exceptions.NotFound(
                f"No {self.object_name} with id {self.kwargs.get('pk')!s:.64}.",
                code=f"{self.object_name}.not_found",
            )
        return instance

    def validated(self, serializer_class, data=None, **kwargs) -> dict:
        serializer = serializer_class(
            data=self.request.data if data is None else data,
            context=self.get_serializer_context(),
            **kwargs,
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def render(self, instance, status_code=status.HTTP_200_OK):
        serializer = self.output_serializer_class(instance, context=self.get_serializer_context())
        return Response(serializer.data, status=status_code)

    def render_fresh(self, instance, status_code=status.HTTP_200_OK):
        """Re-read through get_queryset (joins and prefetches) and render."""
        return self.render(self.get_queryset().get(pk=instance.pk), status_code)

    def deleted(self, instance_id):
        return Response({"id": str(instance_id), "object": self.object_name, "deleted": True})

    # --- the standard actions ---

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.output_serializer_class(
            page, many=True, context=self.get_serializer_context()
        )
        return self.get_paginated_response(serializer.data)

    def retrieve(self, request, *args, **kwargs):
        return self.render(self.get_object())


# --- Products -------------------------------------------------------------------------------------


@api_docs("product", s.ProductSerializer, s.ProductInputSerializer, delete=True)
class ProductViewSet(ApiViewSet):
    """Products: what is sold. Limits and expiry left null use the store defaults."""

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
        product = self.get_object()
        product_delete(product=product)
        return self.deleted(pk)


@api_docs(
    "variant", s.VariantSerializer, s.VariantInputSerializer, s.VariantUpdateSerializer, delete=True
)
class VariantViewSet(ApiViewSet):
    """Variants: the purchasable options of a product; prices in minor units."""

    object_name = "variant"
    queryset = Variant.objects.all()
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


# --- Media --------------------------------------------------------------------------------------


@api_docs("media", s.MediaSerializer, s.MediaCreateSerializer, delete=True, multipart=True)
class MediaViewSet(ApiViewSet):
    """Media: stored files, uploaded as multipart `file` or directly to the storage."""

    object_name = "media"
    queryset = Media.objects.all()
    filterset_class = filters.MediaFilterSet
    output_serializer_class = s.MediaSerializer
    input_serializer_class = s.MediaCreateSerializer
    search_fields = ("filename",)
    sort_fields = {
        "created_at": "created_at",
        "filename": "filename",
        "byte_size": "byte_size",
    }
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_parsers(self):
        action_map = getattr(self, "action_map", None) or {}
        request = getattr(self, "request", None)
        if request is not None and action_map.get(request.method.lower()) == "create":
            return [MultiPartParser()]
        return super().get_parsers()

    def create(self, request):
        """Multipart `file`: spooled to a temporary file by Django's upload handlers above
        FILE_UPLOAD_MAX_MEMORY_SIZE, hashed in chunks, streamed to the storage."""
        limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # Refuse before reading a byte of the body.
        if length > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(
                f"The file is larger than the {limit} byte limit.", code="media.too_large"
            )
        data = self.validated(s.MediaCreateSerializer)
        media = media_create(
            file=data["file"],
            filename=data.get("filename") or data["file"].name,
            content_type=data.get("content_type") or data["file"].content_type,
        )
        return self.render(media, status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        media_delete(media=self.get_object())
        return self.deleted(pk)

    @extend_schema(request=s.MediaUploadStartSerializer, responses={201: s.MediaUploadSerializer})
    @action(detail=False, methods=["post"], url_path="uploads")
    def upload_start(self, request):
        """Start a direct upload: the client sends the bytes to `upload_url` itself."""
        data = self.validated(s.MediaUploadStartSerializer)
        upload, instructions = media_upload_start(
            filename=data["filename"],
            byte_size=data["byte_size"],
            content_type=data.get("content_type"),
            site_url=site_url(request),
        )
        body = {"id": str(upload.pk), "object": "media_upload", **instructions}
        body["expires_at"] = int(upload.expires_at.timestamp())
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses=s.MediaSerializer,
        parameters=[OpenApiParameter("upload_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    )
    @action(detail=False, methods=["post"], url_path=r"uploads/(?P<upload_id>[^/]+)/complete")
    def upload_complete(self, request, upload_id=None):
        """Check the uploaded object (exists, size matches), hash it, and create the media."""
        upload_pk = self.parse_pk(upload_id)
        upload = MediaUpload.objects.filter(pk=upload_pk).first() if upload_pk else None
        if upload is None:
            raise exceptions.NotFound(
                f"No upload with id {upload_id!s:.64}.", code="media_upload.not_found"
            )
        media = media_upload_complete(upload=upload)
        return self.render(media)


@csrf_exempt
def media_upload_content(request, upload_id):
    """The local-storage stand-in for S3's presigned upload: `PUT` the raw bytes with the
    signed, expiring token of `upload_url`. Streams the body to the storage in chunks."""
    if request.method != "PUT":
        response = JsonResponse(
            error_body(405, "request.method_not_allowed", "Use PUT."), status=405
        )
        response["Allow"] = "PUT"
        return response
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    try:
        media_upload_receive(
            upload_id=upload_id,
            token=request.GET.get("token", ""),
            stream=request,
            content_length=length,
        )
    except ServiceError as exc:
        return JsonResponse(service_error_body(exc), status=service_error_status(exc))
    return HttpResponse(status=204)


# --- Downloads ----------------------------------------------------------------------------------


@api_docs(
    "download",
    s.DownloadSerializer,
    s.DownloadCreateSerializer,
    s.DownloadInputSerializer,
    delete=True,
    expand=s.DOWNLOAD_EXPANDABLE,
)
class DownloadViewSet(ApiViewSet):
    """Downloads (SureCart's download): a media file or an external URL, on a product, a
    variant, or kept for attaching to single orders."""

    object_name = "download"
    queryset = Download.objects.select_related("media", "product", "variant")
    filterset_class = filters.DownloadFilterSet
    output_serializer_class = s.DownloadSerializer
    input_serializer_class = s.DownloadInputSerializer
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

    def payload(self):
        """SureCart's `{"download": {...}}`, or the bare object."""
        data = self.request.data
        if isinstance(data, dict) and "download" in data:
            if not isinstance(data["download"], dict):
                raise exceptions.ValidationError(
                    {"download": ["Must be an object."]}, code="invalid"
                )
            return data["download"]
        return data

    def create(self, request):
        data = self.validated(s.DownloadInputSerializer, data=self.payload())
        download = download_create(**data)
        return self.render_fresh(download, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        download = self.get_object()
        data = self.validated(s.DownloadInputSerializer, data=self.payload(), partial=True)
        download_update(download=download, **data)
        return self.render_fresh(download)

    def destroy(self, request, pk=None):
        download_delete(download=self.get_object())
        return self.deleted(pk)


# --- Orders -------------------------------------------------------------------------------------


@api_docs("order", s.OrderSerializer, s.OrderCreateSerializer, updatable=False)
class OrderViewSet(ApiViewSet):
    """Orders: a paid order grants its buyer the downloads of its lines and attachments."""

    object_name = "order"
    queryset = Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("position", "id")),
        Prefetch("downloads", queryset=Download.objects.only("id").order_by("position", "id")),
    )
    filterset_class = filters.OrderFilterSet
    output_serializer_class = s.OrderSerializer
    input_serializer_class = s.OrderCreateSerializer
    sort_fields = {
        "created_at": "created_at",
        "placed_at": "placed_at",
        "number": "number",
        "email": "email",
    }
    search_description = "email, or the order number"
    http_method_names = ["get", "post", "head", "options"]

    def search_q(self, term: str) -> Q:
        condition = Q(email__icontains=term)
        if term.lstrip("#").isdigit() and len(term) < 19:
            condition |= Q(number=int(term.lstrip("#")))
        return condition

    def _downloads(self, ids, attribute: str) -> list[Download]:
        found = {download.pk: download for download in Download.objects.filter(pk__in=ids)}
        if missing := [str(pk) for pk in ids if pk not in found]:
            raise exceptions.ValidationError(
                {attribute: [f"No such download: {', '.join(missing)}."]}, code="does_not_exist"
            )
        return [found[pk] for pk in ids]

    def create(self, request):
        data = self.validated(s.OrderCreateSerializer)
        lines, errors = [], {}
        for index, line in enumerate(data["lines"]):
            target = line_target(
                product_id=line.get("product"), variant_id=line.get("variant"), sku=line.get("sku")
            )
            if target is None:
                given = next(name for name in ("variant", "product", "sku") if line.get(name))
                errors[index] = {given: [f"No {given} {line[given]}."]}
                continue
            product, variant = target
            lines.append(LineInput(product=product, variant=variant, quantity=line["quantity"]))
        if errors:
            raise exceptions.ValidationError({"lines": errors}, code="does_not_exist")
        order = order_create(
            email=data["email"],
            lines=lines,
            number=data.get("number"),
            status=data["status"],
            placed_at=data.get("placed_at"),
            downloads=self._downloads(data.get("downloads", []), "downloads"),
            send_email=data["send_email"],
        )
        return self.render_fresh(order, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        """Mark paid and issue the grants (idempotent); emails the buyer the first time."""
        order = self.get_object()
        order_pay(order=order)
        return self.render_fresh(order)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a pending order."""
        order = self.get_object()
        order_cancel(order=order)
        return self.render_fresh(order)

    @extend_schema(request=s.RefundSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def refund(self, request, pk=None):
        """Refund the order, or only `line_ids` (revoking only those lines' grants)."""
        order = self.get_object()
        data = self.validated(s.RefundSerializer)
        order_refund(order=order, line_ids=data.get("line_ids"))
        return self.render_fresh(order)

    @extend_schema(request=s.AttachSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def attach(self, request, pk=None):
        """Attach downloads to this order (Fileflare's assets); a paid order gets them now."""
        order = self.get_object()
        data = self.validated(s.AttachSerializer)
        downloads = self._downloads(data["ids"], "download_ids")
        order_attach_downloads(order=order, downloads=downloads)
        return self.render_fresh(order)

    @extend_schema(request=s.AttachSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def detach(self, request, pk=None):
        """Detach downloads from this order and revoke the grants they gave."""
        order = self.get_object()
        data = self.validated(s.AttachSerializer)
        downloads = self._downloads(data["ids"], "download_ids")
        order_detach_downloads(order=order, downloads=downloads)
        return self.render_fresh(order)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def send_email(self, request, pk=None):
        """Send (again) the order email with the link to the buyer's order page."""
        order = order_send_email(order=self.get_object(), request=request)
        return self.render_fresh(order)


# --- Grants ----------------------------------------------------------------------------------


@api_docs(
    "grant",
    s.GrantSerializer,
    s.GrantCreateSerializer,
    s.GrantUpdateSerializer,
    delete=True,
    put=True,
)
class GrantViewSet(ApiViewSet):
    """EasyCart's DownloadItem: list, create, get, update (PUT or PATCH) and delete."""

    object_name = "grant"
    queryset = DownloadGrant.objects.select_related("download__media", "line")
    filterset_class = filters.GrantFilterSet
    output_serializer_class = s.GrantSerializer
    input_serializer_class = s.GrantCreateSerializer
    update_serializer_class = s.GrantUpdateSerializer
    search_description = "the order's email or number, or the file's name"
    sort_fields = {
        "date_created": "created_at",
        "created_at": "created_at",
        "download_count": "download_count",
        "expires_at": "expires_at",
        "last_downloaded_at": "last_downloaded_at",
    }
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def search_q(self, term: str) -> Q:
        condition = (
            Q(order__email__icontains=term)
            | Q(download__name__icontains=term)
            | Q(download__media__filename__icontains=term)
        )
        if term.lstrip("#").isdigit() and len(term) < 19:
            condition |= Q(order__number=int(term.lstrip("#")))
        return condition

    def create(self, request):
        data = self.validated(s.GrantCreateSerializer)
        grant = grant_create(
            order=data["order_id"],
            download=data["download"],
            line=data.get("line"),
            download_limit=data.get("download_limit"),
            expires_at=data.get("expires_at"),
            download_count=data["download_count"],
        )
        return self.render_fresh(grant, status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        grant = self.get_object()
        data = self.validated(s.GrantUpdateSerializer, partial=True)
        grant_update(grant=grant, **data)
        return self.render_fresh(grant)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        grant_delete(grant=self.get_object())
        return self.deleted(pk)

    def _one(self, grant):
        return DownloadGrant.objects.filter(pk=grant.pk)

    @extend_schema(request=None, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request, pk=None):
        """Set the download count back to zero."""
        grant = self.get_object()
        grants_reset(grants=self._one(grant))
        return self.render_fresh(grant)

    @extend_schema(request=s.GrantExtendSerializer, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        """Extend by `days` (from now when already expired) or set `expires_at`."""
        grant = self.get_object()
        grant_extend(grant=grant, **self.validated(s.GrantExtendSerializer))
        return self.render_fresh(grant)

    @extend_schema(request=None, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Stop this grant from serving its file (the log is kept)."""
        grant = self.get_object()
        grants_revoke(grants=self._one(grant))
        return self.render_fresh(grant)

    @extend_schema(request=None, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Undo a revocation."""
        grant = self.get_object()
        grants_restore(grants=self._one(grant))
        return self.render_fresh(grant)


# --- Events and customers -------------------------------------------------------------------


@api_docs("event", s.EventSerializer)
class EventViewSet(ApiViewSet):
    """Events: every download attempt, for support and disputes (read-only)."""

    object_name = "event"
    queryset = DownloadEvent.objects.select_related("grant").only(
        "id",
        "at",
        "ip",
        "user_agent",
        "outcome",
        "grant__id",
        "grant__order_id",
        "grant__download_id",
    )
    filterset_class = filters.EventFilterSet
    output_serializer_class = s.EventSerializer
    search_fields = ("ip", "user_agent")
    sort_fields = {"at": "at"}
    http_method_names = ["get", "head", "options"]


@api_docs("customer", s.CustomerSerializer)
class CustomerViewSet(ApiViewSet):
    """Customers: buyers with an account, and how many orders they have."""

    object_name = "customer"
    queryset = User.objects.filter(is_staff=False).annotate(orders_count=Count("orders"))
    filterset_class = filters.CustomerFilterSet
    output_serializer_class = s.CustomerSerializer
    search_fields = ("email", "name")
    sort_fields = {
        "created_at": "date_joined",
        "email": "email",
        "name": "name",
        "orders_count": "orders_count",
    }
    http_method_names = ["get", "head", "options"]
