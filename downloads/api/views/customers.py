"""Customers through the merchant API (read-only): buyers with an account, and how many
orders they have."""

from django.db.models import Count

from accounts.models import User

from .. import filters
from ..schema import api_docs
from ..serializers import customers as s
from .base import ApiViewSet


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
