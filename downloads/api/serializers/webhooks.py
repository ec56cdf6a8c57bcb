"""Webhook serializers: endpoints (their secret shown only at creation and rotation),
deliveries and their attempts."""

from rest_framework import serializers

from downloads.services.webhooks import EVENT_TYPES

from .common import ConstantField, UnixTimeField, text


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("webhook_endpoint")
    url = serializers.URLField()
    description = serializers.CharField()
    event_types = serializers.ListField(
        child=serializers.CharField(), help_text="Empty: every event type."
    )
    is_active = serializers.BooleanField()
    created_at = UnixTimeField()
    updated_at = UnixTimeField()


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """Shown when the endpoint is created and when its secret is rotated, never in lists."""

    secret = serializers.CharField(help_text="The HMAC-SHA256 signing key (Webhook-Signature).")


class WebhookEndpointInputSerializer(serializers.Serializer):
    # The service validates the URL scheme and the event types, with its own codes.
    url = text(max_length=2048)
    description = text(required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        max_length=len(EVENT_TYPES) * 2,
    )
    is_active = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.Serializer):
    object = ConstantField("webhook_attempt")
    at = UnixTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Also the Webhook-Id header: the idempotency key.")
    object = ConstantField("webhook_delivery")
    endpoint = serializers.UUIDField(source="endpoint_id")
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = UnixTimeField()
    next_attempt_at = UnixTimeField(allow_null=True)
    delivered_at = UnixTimeField(allow_null=True)
    payload = serializers.JSONField(help_text="The JSON body sent.")
    attempt_log = WebhookAttemptSerializer(many=True, help_text="Every attempt, oldest first.")
