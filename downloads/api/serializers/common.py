"""What every serializer of the merchant API shares: the `object` constant, Unix times,
UUID relations, expandable ids, bounded integers and amounts, and the envelopes (errors,
deleted) that the schema describes."""

from datetime import UTC, datetime

from rest_framework import serializers

from downloads.money import MAX_AMOUNT

from ..filters import UNIX_MAX, UNIX_MIN

INT_MAX = 2**31 - 1


# --- Fields -------------------------------------------------------------------------------------


class ConstantField(serializers.Field):
    """The `object` of every resource: always the same string."""

    def __init__(self, value: str, **kwargs):
        self.value = value
        kwargs.setdefault("source", "*")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return self.value


class UnixTimeField(serializers.Field):
    """A datetime as Unix seconds (an integer), in and out."""

    default_error_messages = {
        "invalid": "A Unix time in seconds is required.",
        "range": f"Must be between {UNIX_MIN} and {UNIX_MAX}.",
    }

    def to_representation(self, value):
        return int(value.timestamp())

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        try:
            seconds = int(data)
        except ValueError:
            self.fail("invalid")
        if not UNIX_MIN <= seconds <= UNIX_MAX:
            self.fail("range")
        return datetime.fromtimestamp(seconds, tz=UTC)


class UUIDRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by its UUID; a malformed id is a clear 422, not a database error."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.UUIDField())
        super().__init__(**kwargs)


def bounded_int(minimum=0, maximum=INT_MAX, **kwargs):
    return serializers.IntegerField(min_value=minimum, max_value=maximum, **kwargs)


def text(max_length=255, **kwargs):
    return serializers.CharField(max_length=max_length, **kwargs)


def amount_input(**kwargs):
    """An amount in, as an integer of minor units from 0 to money.MAX_AMOUNT."""
    return serializers.IntegerField(min_value=0, max_value=MAX_AMOUNT, **kwargs)


def amount_output(help_text: str = "In minor units of the order's currency.", **kwargs):
    """An amount out, an integer of minor units."""
    return serializers.IntegerField(help_text=help_text, **kwargs)


# --- Errors (schema only) -----------------------------------------------------------------------


class ValidationErrorSerializer(serializers.Serializer):
    attribute = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The error envelope of every 4xx/5xx answer."""

    http_status = serializers.CharField(help_text="e.g. unprocessable_entity")
    code = serializers.CharField(help_text="Machine-readable, e.g. download.invalid")
    message = serializers.CharField()
    validation_errors = ValidationErrorSerializer(many=True)


class DeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


class TimestampsMixin(serializers.Serializer):
    created_at = UnixTimeField()
    updated_at = UnixTimeField()


class ExpandableField(serializers.Field):
    """An id, or the object itself when the request asked `expand[]=<field>`."""

    def __init__(self, serializer_class, **kwargs):
        self.serializer_class = serializer_class
        kwargs.setdefault("source", "*")
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, instance):
        related_id = getattr(instance, f"{self.field_name}_id")
        if related_id is None:
            return None
        if self.field_name in self.context.get("expand", ()):
            return self.serializer_class(
                getattr(instance, self.field_name), context=self.context
            ).data
        return str(related_id)
