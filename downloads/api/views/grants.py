"""Grants and their log through the merchant API: grants are EasyCart's DownloadItem (list,
create, get, PUT or PATCH, delete; reset, extend, revoke, restore), events the read-only log
of every download attempt."""

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action

from downloads import selectors
from downloads.models import DownloadEvent, DownloadGrant
from downloads.services.grants import (
    grant_create,
    grant_delete,
    grant_extend,
    grant_update,
    grants_reset,
    grants_restore,
    grants_revoke,
)

from .. import filters
from ..schema import api_docs
from ..serializers import grants as s
from .base import ApiViewSet


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
    # Each grant's stamped copy (`stamped`) comes in the same statement (one LEFT JOIN).
    queryset = selectors.grants_with_stamp_state(
        DownloadGrant.objects.select_related("download__media", "line")
    )
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
        return filters.or_order_number(condition, term, "order__number")

    def create(self, request):
        grant = grant_create(**self.validated(s.GrantCreateSerializer))
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

    def _on_this_grant(self, service):
        """Run a service made for many grants (reset, revoke, restore) on this one alone."""
        grant = self.get_object()
        service(grants=DownloadGrant.objects.filter(pk=grant.pk))
        return self.render_fresh(grant)

    @extend_schema(request=None, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request, pk=None):
        """Set the download count back to zero."""
        return self._on_this_grant(grants_reset)

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
        return self._on_this_grant(grants_revoke)

    @extend_schema(request=None, responses=s.GrantSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Undo a revocation."""
        return self._on_this_grant(grants_restore)


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
