"""Consume: the download rule and its log.

Rules owned here: a download is taken by ONE conditional UPDATE whose WHERE clause is the
whole rule (`DownloadGrant.available_q`: not revoked, not expired, under the limit), so
concurrent requests never overshoot a limit; a download of several files at once (download
all) takes one from each in one transaction before anything is sent, under the same rule;
every attempt, served or refused, is logged as a DownloadEvent; a refusal's reason comes
from the row already read.

The resume rule, also owned here: a counted download opens a resume window on its grant
(`resume_until`, DOWNLOADS_RESUME_WINDOW seconds) with a byte budget (`resume_bytes_left`:
DOWNLOADS_RESUME_BUDGET times the file's size, less what that download served). A Range
request not starting at byte 0 is free while the window is open and its bytes fit in the
budget, which the conditional UPDATE that grants it decrements (its WHERE clause checks the
budget, so concurrent resumes never overdraw it). Anything else counts like a new download,
which opens a new window: however Range requests are mixed, a grant serves at most
limit × budget × size bytes. HEAD delivers no bytes and never counts.
"""

import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .. import selectors, storage
from ..models import Download, DownloadEvent, DownloadGrant, Media
from . import webhooks


@dataclass(frozen=True)
class Consumption:
    """What `grant_consume` decided: served, or the reason it was refused."""

    outcome: str
    counted: bool = True  # False: a free resume of the last counted download

    @property
    def allowed(self) -> bool:
        return self.outcome == DownloadEvent.Outcome.SERVED


CONSUMED_EVENTS = frozenset({"download.served", "grant.limit_reached"})


# PostgreSQL takes the count and logs the download in ONE statement, in autocommit: no
# BEGIN/COMMIT round trips, no second statement (see bench/). Its WHERE clause is the one
# copy of the availability rule that is not derived from `DownloadGrant.refusal_q` (the ORM
# would compile it on every call): tests/downloads/models/test_grants.py proves that it, the ORM
# filter and `DownloadGrant.refusal` agree on every state of a grant. The row stays locked by
# the UPDATE until the statement commits, so the count it returns is the one this download
# left.
_AVAILABLE_SQL = """
      revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > %(now)s)
      AND (download_limit IS NULL OR download_count < download_limit)"""
_LOG_TAKEN_SQL = """
    INSERT INTO downloads_downloadevent (id, grant_id, at, ip, user_agent, outcome)
    SELECT %(event)s, id, %(now)s, %(ip)s::inet, %(user_agent)s::text, %(outcome)s::text
    FROM taken"""
_CONSUME_SQL = f"""
WITH taken AS (
    UPDATE downloads_downloadgrant
    SET download_count = download_count + 1,
        last_downloaded_at = %(now)s,
        resume_until = %(resume_until)s,
        resume_bytes_left = %(resume_bytes)s,
        updated_at = %(now)s
    WHERE id = %(grant)s AND {_AVAILABLE_SQL}
    RETURNING id, download_count
), logged AS ({_LOG_TAKEN_SQL}
)
SELECT download_count FROM taken
"""  # noqa: S608 - constant fragments only; every value is a parameter


def resume_may_be_free(grant: DownloadGrant, now=None) -> bool:
    """Whether a resume of this loaded grant might still be free (its window open, budget
    left), so a used-up grant's resume is worth preparing. Only a hint: the conditional
    UPDATE of `grant_consume` decides. A grant loaded without these fields (deferred:
    reading them would cost a query each) might."""
    if _RESUME_FIELDS & grant.get_deferred_fields():
        return True
    return (
        grant.resume_until is not None
        and grant.resume_until > (now or timezone.now())
        and grant.resume_bytes_left > 0
    )


_RESUME_FIELDS = frozenset({"resume_until", "resume_bytes_left"})


def _resume_allowance(*, size: int | None, length: int | None) -> int:
    """The bytes free resumes may serve after a download that served `length` of a file of
    `size` bytes (None: unknown, so nothing is free)."""
    if not size:
        return 0
    served = size if length is None else length
    return max(int(settings.DOWNLOADS_RESUME_BUDGET * size) - served, 0)


def _resume_free(*, grant: DownloadGrant, length: int, now) -> bool:
    """Take `length` bytes from the grant's resume budget in ONE conditional UPDATE whose
    WHERE clause is the rule (not revoked, not expired, window open, budget enough); False
    when it refused. The download limit is not checked: a resume is of a download already
    counted, the last one included."""
    free = (
        DownloadGrant.objects.filter(
            ~DownloadGrant.refusal_q(DownloadEvent.Outcome.REVOKED, now),
            ~DownloadGrant.refusal_q(DownloadEvent.Outcome.EXPIRED, now),
            pk=grant.pk,
            resume_until__gt=now,
            resume_bytes_left__gte=length,
        ).update(resume_bytes_left=F("resume_bytes_left") - length, updated_at=now)
        == 1
    )
    if free and "resume_bytes_left" not in grant.get_deferred_fields():
        grant.resume_bytes_left -= length
    return free


def grant_consume(
    *,
    grant: DownloadGrant,
    ip: str | None = None,
    user_agent: str = "",
    size: int | None = None,
    length: int | None = None,
    resume: bool = False,
) -> Consumption:
    """Take one download from a grant, if the database agrees, and log the attempt.

    `size` is the delivered file's size in bytes (None: unknown, an external link), `length`
    the bytes this response may deliver (None: the whole file) and `resume` whether it is a
    Range request not starting at byte 0. Such a resume is free while the grant's resume
    window is open and `length` fits in its budget (see the module's resume rule): the
    budget is decremented, nothing is counted or logged (`counted` False). Otherwise the
    download is counted, and the count opens a new window and budget.

    The count moves in ONE conditional UPDATE whose WHERE clause holds the whole rule (not
    revoked, not expired, under the limit), so concurrent requests can never overshoot the
    limit. When no row changed, the reason comes from the loaded row (a row that looked
    available lost a race to the limit), without reading it again. On PostgreSQL the UPDATE
    and the event's INSERT are one statement; elsewhere they share a transaction.
    `download.served` and `grant.limit_reached` join that transaction when an endpoint wants
    them. Deliver nothing until this has answered: a served download is committed.
    """
    now = timezone.now()
    # A resume past the end (416) delivers nothing, so it takes nothing, like HEAD.
    if (
        resume
        and size
        and length is not None
        and (length == 0 or _resume_free(grant=grant, length=length, now=now))
    ):
        return Consumption(outcome=DownloadEvent.Outcome.SERVED, counted=False)
    resume_until = now + timedelta(seconds=settings.DOWNLOADS_RESUME_WINDOW)
    resume_bytes = _resume_allowance(size=size, length=length)
    user_agent = _stored_user_agent(user_agent)
    subscribed = CONSUMED_EVENTS & webhooks.subscribed_types()
    one_statement = connection.vendor == "postgresql"
    # A single statement is atomic by itself; anything more needs a transaction around it.
    atomic = (
        transaction.atomic(savepoint=False) if subscribed or not one_statement else nullcontext()
    )
    with atomic:
        if one_statement:
            with connection.cursor() as cursor:
                cursor.execute(
                    _CONSUME_SQL,
                    {
                        "grant": grant.pk,
                        "now": now,
                        "resume_until": resume_until,
                        "resume_bytes": resume_bytes,
                        "event": uuid.uuid4(),
                        "ip": ip or None,
                        "user_agent": user_agent,
                        "outcome": DownloadEvent.Outcome.SERVED.value,
                    },
                )
                row = cursor.fetchone()
            count = row[0] if row else None
        else:
            count = _consume_in_transaction(
                grant=grant,
                now=now,
                exact="grant.limit_reached" in subscribed,
                resume_until=resume_until,
                resume_bytes=resume_bytes,
            )
            if count is not None:
                download_event_create(
                    grant=grant,
                    outcome=DownloadEvent.Outcome.SERVED,
                    ip=ip,
                    user_agent=user_agent,
                    at=now,
                )
        if count is None:
            return _refused(grant=grant, now=now, ip=ip, user_agent=user_agent)
        grant.download_count = count
        grant.last_downloaded_at = now
        grant.resume_until, grant.resume_bytes_left = resume_until, resume_bytes
        if subscribed:
            _emit_consumed(grant=grant, at=now, ip=ip, user_agent=user_agent, subscribed=subscribed)
    return Consumption(outcome=DownloadEvent.Outcome.SERVED)


@dataclass(frozen=True)
class Taken:
    """What `grant_consume_by_token` found and did. `consumption` None: it decided nothing
    (a stamped file, an external link), so the caller serves the grant the usual way; the
    grant it read saves that way its lookup."""

    grant: DownloadGrant
    consumption: Consumption | None
    event_id: uuid.UUID | None = None


def consumes_by_token() -> bool:
    """Whether a whole-file GET can take its download before its response is made, in the
    one statement of `grant_consume_by_token`: on PostgreSQL, with files on a reachable S3
    (a presigned URL cannot fail to be sent once made), and with nobody subscribed to the
    served events (they join the count's transaction). Memory reads only."""
    return (
        connection.vendor == "postgresql"
        and storage.is_s3()
        and storage.reachable()
        and not CONSUMED_EVENTS & webhooks.subscribed_types()
    )


_by_token_sql: dict = {}


def _consume_by_token_sql() -> str:
    # Built once per database alias around the delivery lookup's own SQL (one definition of
    # what a download reads), with the availability rule of _CONSUME_SQL.
    alias = connection.alias
    if alias not in _by_token_sql:
        column = selectors.delivery_column
        names = [f"c{i}" for i in range(selectors.DELIVERY_WIDTH)]
        grant_id = names[column(DownloadGrant, "id")]
        media_id = names[column(Download, "media_id")]
        stamp = names[column(Download, "stamp")]
        size = names[column(Media, "byte_size")]
        _by_token_sql[alias] = f"""
WITH found({", ".join(names)}) AS ({selectors.delivery_lookup_sql(alias)}),
taken AS (
    UPDATE downloads_downloadgrant
    SET download_count = download_count + 1,
        last_downloaded_at = %(now)s,
        resume_until = %(resume_until)s,
        resume_bytes_left = GREATEST(
            FLOOR(%(budget)s * COALESCE(found.{size}, 0))::bigint - COALESCE(found.{size}, 0), 0
        ),
        updated_at = %(now)s
    FROM found
    WHERE downloads_downloadgrant.id = found.{grant_id}
      AND found.{media_id} IS NOT NULL AND NOT found.{stamp}
      AND {_AVAILABLE_SQL}
    RETURNING downloads_downloadgrant.id, downloads_downloadgrant.download_count
), logged AS ({_LOG_TAKEN_SQL}
)
SELECT found.*, (SELECT download_count FROM taken) FROM found
"""  # noqa: S608 - constant fragments and the ORM's compiled lookup; values are parameters
    return _by_token_sql[alias]


def grant_consume_by_token(
    *, token: str, ip: str | None = None, user_agent: str = ""
) -> Taken | None:
    """Find a grant by its token and take one download of its whole file, in ONE statement
    (PostgreSQL; only when `consumes_by_token()`): the delivery lookup, the conditional
    UPDATE of `grant_consume` (the same rule, the same resume window and budget for a whole
    file) and the INSERT of its event. None: no such grant.

    Only a stored file that is not stamped is taken here; for the others nothing is decided
    (`Taken.consumption` None). A refusal's reason is read from the row the statement found,
    and logged, only on the refused path. The caller delivers right after; if that fails it
    gives the download back (`grant_consume_undo`).
    """
    if not selectors.token_ok(token):
        return None
    now = timezone.now()
    event = uuid.uuid4()
    resume_until = now + timedelta(seconds=settings.DOWNLOADS_RESUME_WINDOW)
    rows = selectors.delivery_rows_of(
        _consume_by_token_sql(),
        {
            "token": token,
            "now": now,
            "resume_until": resume_until,
            "budget": float(settings.DOWNLOADS_RESUME_BUDGET),
            "event": event,
            "ip": ip or None,
            "user_agent": _stored_user_agent(user_agent),
            "outcome": DownloadEvent.Outcome.SERVED.value,
        },
    )
    if not rows:
        return None
    row = rows[0]
    grant = selectors.grant_from_delivery_row(row, token=token)
    if grant is None:
        return None
    count = row[selectors.DELIVERY_WIDTH]
    if count is not None:
        size = grant.download.media.byte_size
        grant.download_count, grant.last_downloaded_at = count, now
        grant.resume_until = resume_until
        grant.resume_bytes_left = _resume_allowance(size=size, length=size)
        return Taken(
            grant=grant, consumption=Consumption(DownloadEvent.Outcome.SERVED), event_id=event
        )
    if grant.download.media_id is None or grant.download.stamp:
        return Taken(grant=grant, consumption=None)
    return Taken(
        grant=grant, consumption=_refused(grant=grant, now=now, ip=ip, user_agent=user_agent)
    )


def grant_consume_undo(*, taken: Taken) -> None:
    """Give back a download `grant_consume_by_token` took for a response that could not be
    made after all (its file could not be presigned): the count goes down by one and the
    event says the attempt failed."""
    with transaction.atomic():
        DownloadGrant.objects.filter(pk=taken.grant.pk, download_count__gt=0).update(
            download_count=F("download_count") - 1, updated_at=timezone.now()
        )
        DownloadEvent.objects.filter(pk=taken.event_id).update(outcome=DownloadEvent.Outcome.FAILED)
    taken.grant.download_count -= 1


def _refusal_of(grant: DownloadGrant, now) -> str:
    """Why the conditional UPDATE took nothing, from the row already read: its refusal, or
    the limit when the row looked available (it lost a race to the last download)."""
    return grant.refusal(now) or DownloadEvent.Outcome.LIMIT_REACHED


def _refused(*, grant: DownloadGrant, now, ip, user_agent) -> Consumption:
    """Log a refused attempt with its reason; nothing was taken."""
    outcome = _refusal_of(grant, now)
    download_event_create(grant=grant, outcome=outcome, ip=ip, user_agent=user_agent, at=now)
    return Consumption(outcome=outcome)


def _consume_in_transaction(
    *, grant: DownloadGrant, now, exact: bool, resume_until=None, resume_bytes: int = 0
) -> int | None:
    """The count taken by the ORM's conditional UPDATE (None: refused), which also opens the
    resume window (`resume_until`, `resume_bytes`; by default none). The count left is read
    back only when it must be `exact`: the UPDATE locked the row for our transaction."""
    taken = DownloadGrant.objects.filter(DownloadGrant.available_q(now), pk=grant.pk).update(
        download_count=F("download_count") + 1,
        last_downloaded_at=now,
        resume_until=resume_until or now,
        resume_bytes_left=resume_bytes,
        updated_at=now,
    )
    if not taken:
        return None
    if exact:
        return DownloadGrant.objects.values_list("download_count", flat=True).get(pk=grant.pk)
    return grant.download_count + 1


def _stored_user_agent(user_agent: str | None) -> str:
    # NUL cannot be stored in a PostgreSQL text column; clients can send it.
    return (user_agent or "").replace("\x00", "")[:512]


def download_event_create(
    *, grant: DownloadGrant, outcome: str, ip: str | None = None, user_agent: str = "", at=None
) -> DownloadEvent:
    """Record one download attempt."""
    return DownloadEvent.objects.create(
        grant=grant,
        outcome=outcome,
        ip=ip or None,
        user_agent=_stored_user_agent(user_agent),
        at=at or timezone.now(),
    )


def _emit_consumed(*, grant: DownloadGrant, at, ip, user_agent, subscribed) -> None:
    """`download.served` and `grant.limit_reached` for a served download, in its transaction.

    `grant.download_count` is the count this download left, read while the UPDATE held the
    row: only the download that takes the last one sees count == limit, so
    `grant.limit_reached` is sent once.
    """
    if "download.served" in subscribed:
        webhooks.emit(
            "download.served",
            partial(webhooks.served_data, grant, at=at, ip=ip, user_agent=user_agent),
        )
    if "grant.limit_reached" in subscribed and grant.download_count == grant.download_limit:
        webhooks.emit_grants("grant.limit_reached", [grant])


def grants_consume_many(
    *, grants, ip: str | None = None, user_agent: str = ""
) -> list[DownloadGrant]:
    """Take one download from each of several grants at once (download all), in one
    transaction, each by the conditional UPDATE of `grant_consume`'s rule; log every attempt.
    Returns the grants that were taken (their counts updated); the others lost a race to
    their limit, expiry or revocation and are left out. Nothing is sent before this returns.
    """
    now = timezone.now()
    user_agent = _stored_user_agent(user_agent)
    subscribed = CONSUMED_EVENTS & webhooks.subscribed_types()
    taken: list[DownloadGrant] = []
    events = []
    with transaction.atomic():
        # Rows are updated in one order (by id), so two downloads of overlapping sets of
        # files wait for each other instead of deadlocking.
        for grant in sorted(grants, key=lambda grant: str(grant.pk)):
            count = _consume_in_transaction(
                grant=grant, now=now, exact="grant.limit_reached" in subscribed
            )
            if count is None:
                outcome = _refusal_of(grant, now)
            else:
                outcome = DownloadEvent.Outcome.SERVED
                grant.download_count, grant.last_downloaded_at = count, now
                # A file sent inside a ZIP has no resume of its own: its window is closed.
                grant.resume_until, grant.resume_bytes_left = now, 0
                taken.append(grant)
            events.append(
                DownloadEvent(
                    grant=grant, outcome=outcome, ip=ip or None, user_agent=user_agent, at=now
                )
            )
        DownloadEvent.objects.bulk_create(events)
        if subscribed:
            for grant in taken:
                _emit_consumed(
                    grant=grant, at=now, ip=ip, user_agent=user_agent, subscribed=subscribed
                )
    return taken
