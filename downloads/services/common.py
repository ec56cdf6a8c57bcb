"""Input rules that several services share, so each is written once.

Rules owned here: expiry in days stays within a century and every expiry date stays
representable (`check_expiry_days`, `check_expires_at`); a required text is non-blank after
stripping (`required_text`); a task enqueued by a change exists only if the change commits
(`enqueue_in_transaction`); deleting what orders still need is refused with a code that
suggests archiving (`delete_or_refuse`).
"""

from datetime import UTC, datetime
from functools import partial

from django.db import transaction
from django.db.models import ProtectedError

from ..errors import ServiceError

# Expiry in days is added to dates; a century keeps every result a valid date, and no expiry
# may run past what every database and Python can represent.
MAX_EXPIRY_DAYS = 36500
LATEST_EXPIRY = datetime(9000, 1, 1, tzinfo=UTC)

# "Not given" for keyword arguments where None is a meaningful value (unlimited, never).
UNSET = object()


def check_expiry_days(days: int | None, *, attribute: str, entity: str, minimum: int = 0) -> None:
    """Refuse a number of days outside minimum..MAX_EXPIRY_DAYS (None: not set, allowed)."""
    if days is not None and not minimum <= days <= MAX_EXPIRY_DAYS:
        raise ServiceError(
            f"{attribute} must be between {minimum} and {MAX_EXPIRY_DAYS}.",
            code=f"{entity}.invalid",
            reason="max_value" if days > MAX_EXPIRY_DAYS else "min_value",
            attribute=attribute,
        )


def check_expires_at(expires_at: datetime | None, *, entity: str = "grant") -> None:
    """Refuse an expiry past LATEST_EXPIRY (None: never expires, allowed)."""
    if expires_at is not None and expires_at >= LATEST_EXPIRY:
        raise ServiceError(
            "expires_at is too far in the future.",
            code=f"{entity}.invalid",
            reason="max_value",
            attribute="expires_at",
        )


def delete_or_refuse(instance, *, code: str, noun: str) -> None:
    """Delete `instance`, or raise `code` when a PROTECT foreign key (an order) needs it."""
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:
        raise ServiceError(
            f"This {noun} is used by orders and cannot be deleted; archive it instead.",
            code=code,
        ) from exc


def save_fields(obj, fields: dict) -> None:
    """Set the already-checked `fields` on `obj` and save just them (and updated_at)."""
    for field, value in fields.items():
        setattr(obj, field, value)
    if fields:
        obj.save(update_fields=[*fields, "updated_at"])


def required_text(value, *, attribute: str, noun: str, entity: str | None = None) -> str:
    """The stripped text, or `<entity>.invalid` (reason `blank`) when nothing is left."""
    value = (value or "").strip()
    if not value:
        raise ServiceError(
            f"A {noun} needs a {attribute}.",
            code=f"{entity or noun}.invalid",
            reason="blank",
            attribute=attribute,
        )
    return value


def _is_database_backend(backend) -> bool:
    # The backport's and Django's own database backends both write the task row with the ORM.
    return type(backend).__name__ == "DatabaseBackend"


def enqueue_in_transaction(task_obj, *args, run_after: datetime | None = None) -> None:
    """Enqueue `task_obj(*args)` so that it exists only if the current transaction commits.

    With the database backend the task row is INSERTed in the current transaction itself: a
    crash right after the commit cannot lose it, and a rollback removes it. Other backends
    (the immediate one, an external queue) cannot join the transaction, so they are handed
    the task after the commit.
    """
    backend = task_obj.get_backend()
    if run_after is not None and backend.supports_defer:
        task_obj = task_obj.using(run_after=run_after)
    if _is_database_backend(backend):
        task_obj.enqueue(*args)
    else:
        transaction.on_commit(partial(task_obj.enqueue, *args))
