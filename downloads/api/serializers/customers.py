"""Customer serializers: the accounts that orders belong to."""

from rest_framework import serializers

from .common import ConstantField, UnixTimeField


class CustomerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("customer")
    email = serializers.EmailField()
    name = serializers.CharField()
    orders_count = serializers.IntegerField()
    created_at = UnixTimeField(source="date_joined")
