"""PDF stamping: each buyer's copy of a stamped Download carries their email and order on
every page, which deters sharing.

How a copy comes to be: whenever a grant of a stamped PDF exists without a copy of the
Download's current file (an order paid, a stamped download attached or backfilled, a new
version, stamping turned on), `stamped_copies_request` records a pending StampedCopy and
enqueues `downloads.tasks.stamped_copy_make`, which runs `stamped_copy_make` in a worker:
the source is read from storage in chunks into a temporary file, stamped with qpdf through
pikepdf, and the result stored privately under its own key.

Rules owned here:
- What is stamped: a Download with `stamp` on whose file is a PDF (by content type or name).
- The stamp text is the Download's `stamp_text` with only {email}, {name}, {order_number}
  and {date} filled in (`stamp_text_check` refuses any other placeholder); it is drawn once
  as one form XObject, placed on every page, so a 500-page book costs one stamp; bookmarks,
  links, metadata and page labels are left as they were (the file is changed in place).
- One copy per grant and version (source media); a newer version's copy replaces the older
  one once it is ready, and deleting a grant or a copy deletes the stored file.
- A PDF that cannot be stamped (encrypted, broken) is marked `unstampable` with the reason
  and delivered as it is; making a copy is idempotent and may run any number of times.
- A change of the stamp's text or position makes every copy again
  (`stamped_copies_remake`); a Download whose stamp is turned off keeps no copies
  (`stamped_copies_discard`); services.catalogue.download_update says which.
- What a buyer gets now (`file_to_deliver`) and where a grant's copy stands (`stamp_state`,
  for the back office and the API) both read the grant's copy of the current version.
"""

import hashlib
import io
import logging
import string
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import pikepdf
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.formats import date_format
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from .. import storage, tasks
from ..errors import ServiceError
from ..models import Download, DownloadGrant, StampedCopy, StampPosition, stamped_upload_to
from .common import enqueue_in_transaction

logger = logging.getLogger(__name__)

PLACEHOLDERS = frozenset({"email", "name", "order_number", "date"})
FONT, FONT_SIZE, MARGIN = "Helvetica", 8, 14  # points
# Helvetica is one of the PDF standard fonts (nothing embedded); it covers Windows-1252.
FONT_ENCODING = "cp1252"


class Unstampable(Exception):
    """The PDF cannot be stamped (encrypted, broken); the reason is the message."""


# --- The stamp -----------------------------------------------------------------------------------


def stamp_text_check(text) -> str:
    """The stamp text, or `download.invalid` when it is blank, too long or names a
    placeholder other than {email}, {name}, {order_number}, {date}."""
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text or len(text) > 255:
        raise ServiceError(
            "stamp_text needs 1 to 255 characters.",
            code="download.invalid",
            reason="blank" if not text else "max_length",
            attribute="stamp_text",
        )
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:  # an unmatched { or }
        raise ServiceError(
            f"stamp_text is not a valid template: {exc}.",
            code="download.invalid",
            reason="invalid",
            attribute="stamp_text",
        ) from exc
    if unknown := names - PLACEHOLDERS:
        raise ServiceError(
            f"Unknown placeholders in stamp_text: {', '.join(sorted(unknown))}; use "
            "{email}, {name}, {order_number} or {date}.",
            code="download.invalid",
            reason="invalid",
            attribute="stamp_text",
        )
    return text


def stamp_text_render(template: str, *, email: str, name: str, order_number, on: date) -> str:
    """The text stamped on one buyer's copy."""
    return template.format(
        email=email,
        name=name or email,
        order_number=order_number,
        date=date_format(on, "j F Y"),
    )


def _drawable(text: str) -> str:
    # What the standard font cannot draw becomes "?" rather than an empty box or an error.
    return text.encode(FONT_ENCODING, "replace").decode(FONT_ENCODING)


def _stamp_form(text: str, width: float) -> bytes:
    """A one-page PDF as wide as the text, holding it: the stamp, made once per copy."""
    buffer = io.BytesIO()
    sheet = canvas.Canvas(buffer, pagesize=(width, FONT_SIZE + 6), pageCompression=1)
    sheet.setFont(FONT, FONT_SIZE)
    sheet.setFillGray(0.35)
    sheet.drawCentredString(width / 2, 4, text)
    sheet.save()
    return buffer.getvalue()


def pdf_stamp(*, source, dest, text: str, position: str = StampPosition.BOTTOM) -> int:
    """Stamp `text` on every page of the PDF in the seekable file `source`, writing the
    result to `dest`; returns the page count. Raises Unstampable for an encrypted or broken
    PDF. One form XObject is shared by every page; nothing else in the file is touched."""
    text = _drawable(text)
    try:
        pdf = pikepdf.open(source)
    except pikepdf.PasswordError as exc:
        raise Unstampable("The PDF is encrypted with a password.") from exc
    except pikepdf.PdfError as exc:
        raise Unstampable(f"The PDF cannot be read: {exc}") from exc
    with pdf:
        if pdf.is_encrypted:
            raise Unstampable("The PDF is encrypted; stamping would remove its protection.")
        width = stringWidth(text, FONT, FONT_SIZE) + 8
        stamp = pikepdf.open(io.BytesIO(_stamp_form(text, width)))
        form = pdf.copy_foreign(stamp.pages[0].as_form_xobject())
        height = FONT_SIZE + 6
        try:
            for page in pdf.pages:
                x0, y0, x1, y1 = (float(v) for v in page.trimbox)
                left = x0 + max((x1 - x0 - width) / 2, 0)
                bottom = y1 - MARGIN - height if position == StampPosition.TOP else y0 + MARGIN
                page.add_overlay(
                    form, pikepdf.Rectangle(left, bottom, left + width, bottom + height)
                )
            pdf.save(dest)
        except pikepdf.PdfError as exc:
            raise Unstampable(f"The PDF cannot be stamped: {exc}") from exc
        return len(pdf.pages)


# --- Copies --------------------------------------------------------------------------------------


def is_stamped(download: Download) -> bool:
    """Whether buyers get their own stamped copy of this download's file."""
    media = download.media if download.media_id else None
    if media is None:
        return False
    return is_stamped_file(
        stamp=download.stamp, content_type=media.content_type, filename=media.filename
    )


def is_stamped_file(*, stamp: bool, content_type: str | None, filename: str | None) -> bool:
    """`is_stamped` from plain values (a download's `stamp`, its media's content type and
    filename; None for a link), for reads that build no instances (the storefront JSON)."""
    if not stamp or filename is None:
        return False
    return content_type == "application/pdf" or filename.lower().endswith(".pdf")


def stamped_copies_request(*, grants: Iterable[DownloadGrant]) -> list[StampedCopy]:
    """Record the copies these grants lack of their Download's current file and enqueue
    their making (after commit). Grants of unstamped downloads are passed over; a copy
    that exists is left alone. Returns the new pending copies. Two queries, whatever the
    number of grants, plus the insert; none when every grant's loaded Download is
    unstamped."""
    grants = list(grants)
    # A grant whose Download is loaded and not stamped costs nothing (paying an order of
    # unstamped files asks no more of the database than before stamping existed).
    download_ids = {
        grant.download_id
        for grant in grants
        if not DownloadGrant.download.is_cached(grant) or grant.download.stamp
    }
    if not download_ids:
        return []
    stamped = {
        download.pk: download.media_id
        for download in Download.objects.filter(pk__in=download_ids, stamp=True).select_related(
            "media"
        )
        if is_stamped(download)
    }
    wanted = [
        StampedCopy(grant_id=grant.pk, source_id=stamped[grant.download_id])
        for grant in grants
        if grant.download_id in stamped
    ]
    if not wanted:
        return []
    have = set(
        StampedCopy.objects.filter(grant_id__in=[copy.grant_id for copy in wanted]).values_list(
            "grant_id", "source_id"
        )
    )
    new = [copy for copy in wanted if (copy.grant_id, copy.source_id) not in have]
    StampedCopy.objects.bulk_create(new, ignore_conflicts=True)
    for copy in new:
        enqueue_in_transaction(tasks.stamped_copy_make, str(copy.pk))
    return new


def stamped_copies_for_download(*, download: Download) -> list[StampedCopy]:
    """Request copies of a stamped Download's current file for every grant that has none
    (stamping turned on, a new version): the grants are walked in the database."""
    if not is_stamped(download):
        return []
    grants = DownloadGrant.objects.filter(download=download).select_related("download__media")
    return stamped_copies_request(grants=grants.iterator(chunk_size=2000))


def stamped_copies_discard(*, download: Download) -> int:
    """Delete every copy of a Download's files (stamping turned off, or about to be made
    again): their stored files go once the deletion is committed (`_copy_deleted`), and a
    task still queued for one of them finds nothing to do. Returns how many went."""
    copies = StampedCopy.objects.filter(grant__download_id=download.pk).only("pk", "file")
    deleted, _ = copies.delete()
    return deleted


def stamped_copies_remake(*, download: Download) -> list[StampedCopy]:
    """Make every buyer's copy again (the stamp's text or position changed): the existing
    copies are deleted, then a pending one is requested for every grant. Until its new copy
    is ready a buyer's download is answered "being prepared" (503), never the old stamp."""
    stamped_copies_discard(download=download)
    return stamped_copies_for_download(download=download)


@dataclass(frozen=True)
class StampState:
    """Where a grant's personalised copy stands, for the back office and the API: `status`
    is a StampedCopy.Status (`pending` also when no copy is recorded yet), `error` why a PDF
    was delivered unstamped, `ready_at` when the copy was made."""

    status: str
    error: str = ""
    ready_at: datetime | None = None

    @property
    def label(self) -> str:
        return StampedCopy.Status(self.status).label


# The annotations `selectors.grants_with_stamp_state` puts on grants: their copy of the
# Download's current file (the one `file_to_deliver` serves), read with the grants.
STATE_ANNOTATIONS = ("stamp_copy_status", "stamp_copy_error", "stamp_copy_ready_at")


def stamp_state(*, grant: DownloadGrant) -> StampState | None:
    """None when the grant's file is not stamped (`is_stamped`); else its copy of the
    current version's state, as `file_to_deliver` sees it. No query when the grant was read
    through `selectors.grants_with_stamp_state` (its Download and media loaded)."""
    download = grant.download
    if not is_stamped(download):
        return None
    if hasattr(grant, STATE_ANNOTATIONS[0]):
        status, error, ready_at = (getattr(grant, name) for name in STATE_ANNOTATIONS)
    else:
        row = (
            StampedCopy.objects.filter(grant_id=grant.pk, source_id=download.media_id)
            .values_list("status", "error", "ready_at")
            .first()
        )
        status, error, ready_at = row or (None, "", None)
    if status is None:
        return StampState(status=StampedCopy.Status.PENDING)
    return StampState(status=status, error=error or "", ready_at=ready_at)


@dataclass(frozen=True)
class CopyFile:
    """A ready stamped copy, shaped like the Media it was made from for the storage's
    response builders (key, filename, content_type, sha256, byte_size, pk)."""

    pk: object
    key: str
    filename: str
    content_type: str
    sha256: str
    byte_size: int


@dataclass(frozen=True)
class Deliverable:
    """What a grant's buyer gets for its file right now: `file` (the Media, or the buyer's
    CopyFile), or nothing yet (`pending`: the copy is being prepared). `stamped` says the
    file is personalised."""

    file: object | None
    pending: bool = False
    stamped: bool = False


def file_to_deliver(*, grant: DownloadGrant) -> Deliverable:
    """The file to serve for a grant (its Download and media loaded): the media itself when
    the download is not stamped or the PDF could not be stamped, the buyer's ready copy of
    the current version, or pending while it is made. No query unless the file is stamped.
    """
    download = grant.download
    if not is_stamped(download):
        return Deliverable(file=download.media if download.media_id else None)
    copy = (
        StampedCopy.objects.filter(grant_id=grant.pk, source_id=download.media_id)
        .only(*_COPY_FIELDS)
        .first()
    )
    return _deliverable(download, copy)


def files_to_deliver(*, grants: Iterable[DownloadGrant]) -> list[Deliverable]:
    """`file_to_deliver` for each of these grants (their Downloads and media loaded), in
    their order, in one query whatever their number, none when no file is stamped (the
    order page, a download-all)."""
    grants = [(grant, is_stamped(grant.download)) for grant in grants]
    stamped_ids = [grant.pk for grant, stamped in grants if stamped]
    copies = {}
    if stamped_ids:
        rows = StampedCopy.objects.filter(grant_id__in=stamped_ids).only(*_COPY_FIELDS)
        copies = {(copy.grant_id, copy.source_id): copy for copy in rows}
    deliverables = []
    for grant, stamped in grants:
        download = grant.download
        if stamped:
            deliverables.append(_deliverable(download, copies.get((grant.pk, download.media_id))))
        else:
            deliverables.append(Deliverable(file=download.media if download.media_id else None))
    return deliverables


_COPY_FIELDS = ("pk", "grant_id", "source_id", "status", "file", "sha256", "byte_size")


def _deliverable(download: Download, copy: StampedCopy | None) -> Deliverable:
    """What the buyer gets of a stamped download, given their copy of its current file."""
    media = download.media
    if copy is None or copy.status == StampedCopy.Status.PENDING:
        return Deliverable(file=None, pending=True, stamped=True)
    if copy.status == StampedCopy.Status.UNSTAMPABLE:
        return Deliverable(file=media)
    return Deliverable(
        file=CopyFile(
            pk=copy.pk,
            key=copy.file.name,
            filename=media.filename,
            content_type=media.content_type,
            sha256=copy.sha256,
            byte_size=copy.byte_size,
        ),
        stamped=True,
    )


def stamped_copy_make(*, copy_id) -> StampedCopy | None:
    """Make one stamped copy (the task's work): stamp the source, store it, mark it ready
    and drop the grant's copies of older versions; or mark it unstampable. Idempotent."""
    copy = (
        StampedCopy.objects.select_related("grant__order", "grant__download", "source")
        .filter(pk=copy_id)
        .first()
    )
    if copy is None or copy.status != StampedCopy.Status.PENDING:
        return copy
    grant, media = copy.grant, copy.source
    order = grant.order
    customer_name = order.customer.get_full_name() if order.customer_id else ""
    text = stamp_text_render(
        grant.download.stamp_text,
        email=order.email,
        name=customer_name,
        order_number=order.number,
        on=timezone.localdate(order.paid_at or order.placed_at),
    )
    with (
        tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as source,
        tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as stamped,
    ):
        for chunk in storage.stored_chunks(media.key):
            source.write(chunk)
        source.seek(0)
        try:
            pdf_stamp(
                source=source, dest=stamped, text=text, position=grant.download.stamp_position
            )
        except Unstampable as exc:
            logger.warning("Media %s cannot be stamped: %s", media.pk, exc)
            StampedCopy.objects.filter(pk=copy.pk, status=StampedCopy.Status.PENDING).update(
                status=StampedCopy.Status.UNSTAMPABLE, error=str(exc)[:500]
            )
            copy.refresh_from_db()
            return copy
        stamped.seek(0)
        digest = _sha256(stamped)
        size = stamped.tell()
        stamped.seek(0)
        name = storage.store_file(stamped_upload_to(copy, media.filename), stamped)
    with transaction.atomic():
        done = StampedCopy.objects.filter(pk=copy.pk, status=StampedCopy.Status.PENDING).update(
            status=StampedCopy.Status.READY,
            file=name,
            byte_size=size,
            sha256=digest,
            ready_at=timezone.now(),
        )
        if not done:  # made twice at once: keep the first, drop this file
            transaction.on_commit(lambda: storage.delete_stored(name), robust=True)
        else:
            # The grant's copies of other versions are replaced by this one.
            for older in StampedCopy.objects.filter(grant=grant).exclude(pk=copy.pk):
                older.delete()
    copy.refresh_from_db()
    return copy


def stamped_copy_give_up(*, copy_id, reason: str) -> bool:
    """Give up making a copy still pending: it is delivered as the file itself, like a PDF
    that cannot be stamped, and the merchant sees why. False when it was no longer pending."""
    given_up = StampedCopy.objects.filter(pk=copy_id, status=StampedCopy.Status.PENDING).update(
        status=StampedCopy.Status.UNSTAMPABLE, error=reason[:500]
    )
    if given_up:
        logger.warning("Stamped copy %s given up: %s", copy_id, reason)
    return bool(given_up)


def _sha256(handle) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(storage.STREAM_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


@receiver(post_delete, sender=StampedCopy)
def _copy_deleted(sender, instance: StampedCopy, **kwargs) -> None:
    """A copy's stored file goes with it, whatever deleted it (a newer version, the grant,
    the order), once the deletion is committed."""
    if instance.file:
        name = instance.file.name
        transaction.on_commit(lambda: storage.delete_stored(name), robust=True)
