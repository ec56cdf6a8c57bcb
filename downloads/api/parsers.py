"""The API's JSON parser (REST_FRAMEWORK's default): bounded in size, in nesting depth, and
refusing text that cannot be encoded.

- More than DATA_UPLOAD_MAX_MEMORY_SIZE bytes: 413 (the body is read whole into memory).
- Nested deeper than MAX_JSON_DEPTH: 400 `request.malformed`, decided by scanning the raw text
  (brackets inside strings ignored) before `json.loads` recurses (deep JSON would otherwise
  raise RecursionError: a 500).
- A string (value or key) holding a lone surrogate (`"\\ud800"`: not encodable as UTF-8, so a
  500 when stored, or when an error message echoes it, as a choice field's does): 422
  `<object>.invalid` naming the attribute, before any serializer sees the value. (NULs are
  the serializers' to refuse, with every other error of the body: DRF's CharField does; a NUL
  that reaches PostgreSQL anyway is a DataError, answered 400.)
"""

import json
import re

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

MAX_JSON_DEPTH = 64

# A JSON string, or an unterminated one to the end of the text: the closing quote is optional
# so a match never backtracks (linear time, even on `"\\"\\"\\"…` without an end).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
# After json.loads, surrogate pairs are joined: any surrogate code point left is a lone one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def content_length(request, default: int = 0) -> int:
    """The request's Content-Length header, or `default` when it is missing or malformed."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or default)
    except ValueError:
        return default


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `text` nests arrays/objects deeper than `limit` (strings skipped)."""
    depth = 0
    for match in _BRACKETS.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
            if depth < 0:  # not JSON: json.loads stops here, before any deeper bracket
                return False
    return False


def printable(text: str) -> str:
    """`text` safe to echo in an answer: lone surrogates and NULs escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def lone_surrogates_at(value, path: str = "") -> list[str]:
    """The attributes (`lines[0].name`) of the strings in `value` (keys included) that hold
    a lone surrogate; the depth is bounded by the parser."""
    if isinstance(value, str):
        return [path] if _LONE_SURROGATE.search(value) else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{printable(key)}" if path else printable(key)
            found += [name] if _LONE_SURROGATE.search(key) else lone_surrogates_at(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += lone_surrogates_at(item, f"{path}[{index}]")
    return found


SURROGATE_MESSAGE = "Text must be valid Unicode (no lone surrogate such as \\ud800)."


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


class LimitedJSONParser(JSONParser):
    """JSON bodies: bounded in size and depth; every string storable (see the module)."""

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        # Not at the top: .exceptions imports rest_framework.views, which imports this module
        # (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES) while it loads.
        from .exceptions import PayloadTooLarge

        parser_context = parser_context or {}
        request = parser_context.get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None and content_length(request) > limit:
            raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_depth_exceeds(text, self.max_depth):
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {self.max_depth} levels."
            )
        try:
            data = json.loads(
                text, parse_constant=_reject_constant if api_settings.STRICT_JSON else None
            )
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        attributes = lone_surrogates_at(data)
        if attributes:
            detail = exceptions.ErrorDetail(SURROGATE_MESSAGE, code="surrogate")
            if attributes == [""]:  # the body is one string
                raise exceptions.ValidationError([detail])
            raise exceptions.ValidationError({name: [detail] for name in attributes[:100]})
        return data
