"""Download all: one ZIP of every file an order's buyer can still download.

Rules owned here:
- What goes in: each grant of the order that may be downloaded now (`DownloadGrant.refusal`,
  the loaded form of `available_q`), i.e. exactly the files the order page offers a
  *Download* button for; nothing while the order awaits payment (the page shows no files).
- Each file is what the single download would serve (`stamping.file_to_deliver`): the
  buyer's stamped copy once it is ready, the media otherwise (an unstampable PDF goes in as
  it is); a copy still being prepared is left out. A file whose stored object cannot be
  found is left out too, so its grant is not taken.
- External links are listed in one text file inside (`Links.txt`: a name and its URL per
  line); their grants are taken like the files', since the buyer gets the link.
- One download is taken from every included grant, all together and before the first byte
  is sent, under the conditional UPDATE (`consume.grants_consume_many`); a grant that lost a
  race in between (to its limit, expiry or revocation) is left out. Grants left out are
  neither taken nor logged: the buyer did not ask for them one by one.
- Names inside the ZIP are the files' own names, cleaned so that every system can extract
  them, and unique ignoring case: "Guide.pdf", "Guide (2).pdf".
- Sizes are the stored objects' own, read before anything is taken, so the ZIP's length
  is known up front (storage.zip_response streams it with a Content-Length).
"""

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from .. import storage
from ..errors import ServiceError
from ..models import REFUSAL_LABELS, DownloadEvent, DownloadGrant, Order, StampedCopy
from . import consume, stamping

logger = logging.getLogger(__name__)

LINKS_NAME = "Links.txt"

# Why a file is not in the ZIP, beyond the refusals of DownloadEvent.Outcome.
PREPARING = "being_prepared"
UNAVAILABLE = "unavailable"
LEFT_OUT_LABELS = {
    **{reason: labels.state for reason, labels in REFUSAL_LABELS.items()},
    PREPARING: gettext_lazy("being prepared"),
    UNAVAILABLE: gettext_lazy("unavailable right now"),
}

# Characters some systems refuse in a file name (Windows: < > : " | ? *), and the ones a
# name must not start or end with there (a trailing dot or space) or on Unix (a leading dot
# hides the file).
_UNSAFE_IN_NAMES = str.maketrans(dict.fromkeys('<>:"|?*', "_"))


@dataclass(frozen=True)
class BundleFile:
    """A stored file in the ZIP: its storage `key`, its `name` inside the ZIP (unique), the
    file's own `filename` and its `size` in bytes."""

    grant: DownloadGrant
    key: str
    name: str
    filename: str
    size: int


@dataclass(frozen=True)
class BundleLink:
    """An external link, listed in the ZIP's links file."""

    grant: DownloadGrant
    name: str
    url: str


@dataclass(frozen=True)
class LeftOut:
    """A file of the order that is not in the ZIP, and why (`reason`: a refusal of
    DownloadEvent.Outcome, PREPARING or UNAVAILABLE)."""

    grant: DownloadGrant
    name: str
    reason: str

    @property
    def label(self) -> str:
        """The reason in the buyer's words: "used up", "expired", "being prepared"…"""
        return LEFT_OUT_LABELS[self.reason]


@dataclass(frozen=True)
class Bundle:
    """What one download-all of an order holds: `files` and `links` in the order page's
    order, and what is `left_out`."""

    order: Order
    files: tuple[BundleFile, ...]
    links: tuple[BundleLink, ...]
    left_out: tuple[LeftOut, ...]
    links_name: str = LINKS_NAME

    @property
    def filename(self) -> str:
        return f"order-{self.order.number}.zip"

    @property
    def is_empty(self) -> bool:
        """Nothing to download: no file and no link."""
        return not self.files and not self.links

    @property
    def byte_size(self) -> int:
        """The files' bytes (the ZIP adds its headers and the links file)."""
        return sum(file.size for file in self.files)

    @property
    def waiting(self) -> bool:
        """Some file is left out only for now (being prepared, or unavailable right now)."""
        return any(item.reason in (PREPARING, UNAVAILABLE) for item in self.left_out)

    @property
    def links_text(self) -> bytes:
        """The links file: a heading, then one "name: URL" line per link."""
        heading = gettext("Links in order #%(number)s (open them in a browser):")
        lines = [heading % {"number": self.order.number}, ""]
        lines += [f"{link.name}: {link.url}" for link in self.links]
        return ("\n".join(lines) + "\n").encode()

    @property
    def texts(self) -> tuple[tuple[str, bytes], ...]:
        """The members made here rather than read from storage, as (name, bytes)."""
        return ((self.links_name, self.links_text),) if self.links else ()


def bundle_contents(*, order: Order, grants=None, now=None, read_storage: bool = True) -> Bundle:
    """What a download-all of `order` would hold now; nothing is taken or logged.

    `grants` are the order's grants in the page's order, their Download and media loaded
    (None: read here). With `read_storage` (the download itself), each file is the one
    `stamping.file_to_deliver` serves (`files_to_deliver`: one query for all the stamped
    files) and its size is read from
    the storage (one HEAD request per file on S3), leaving out what is missing. Without it
    (the order page), nothing is asked of the storage: sizes are the recorded ones (for a
    stamped copy, its original's) and a stamped file's copy is read by
    `stamping.stamp_state`, with no query when the grants were read through
    `selectors.grants_with_stamp_state`. Raises `order.invalid_state` while the order
    awaits payment.
    """
    if order.status == Order.Status.PENDING:
        raise ServiceError(
            f"Order #{order.number} is awaiting payment: its files can be downloaded once it "
            "is paid.",
            code="order.invalid_state",
        )
    now = now or timezone.now()
    grants = list(_order_grants(order) if grants is None else grants)
    deliverables = {}
    if read_storage:  # every stamped file's copy in one query
        file_grants = [grant for grant in grants if grant.download.is_file]
        deliverables = dict(
            zip(
                (grant.pk for grant in file_grants),
                stamping.files_to_deliver(grants=file_grants),
                strict=True,
            )
        )
    files, links, left_out = [], [], []
    for grant in grants:
        download = grant.download
        refusal = grant.refusal(now)
        if refusal:
            left_out.append(LeftOut(grant=grant, name=download.display_name, reason=refusal))
            continue
        if not download.is_file:
            links.append(
                BundleLink(grant=grant, name=_one_line(download.display_name), url=download.url)
            )
            continue
        if read_storage:
            deliverable = deliverables[grant.pk]
            file, pending = deliverable.file, deliverable.pending
        else:
            file, pending = download.media, _is_pending(stamping.stamp_state(grant=grant))
        if pending:
            left_out.append(LeftOut(grant=grant, name=download.display_name, reason=PREPARING))
            continue
        size = _stored_size(file.key) if read_storage else file.byte_size
        if size is None:
            left_out.append(LeftOut(grant=grant, name=download.display_name, reason=UNAVAILABLE))
            continue
        files.append((grant, file.key, file.filename, size))
    return _bundle(order, files, links, left_out)


def bundle_take(
    *, order: Order, grants=None, ip: str | None = None, user_agent: str = ""
) -> Bundle:
    """Take one download from every grant a download-all of `order` includes now (see
    `bundle_contents`), in one transaction, before anything is sent; return what was taken
    (a grant that lost a race is moved to `left_out`). Stream the result with
    `storage.zip_response`."""
    contents = bundle_contents(order=order, grants=grants)
    wanted = [file.grant for file in contents.files] + [link.grant for link in contents.links]
    if not wanted:
        return contents
    taken = {
        grant.pk
        for grant in consume.grants_consume_many(grants=wanted, ip=ip, user_agent=user_agent)
    }
    if len(taken) == len(wanted):
        return contents
    # Lost a race since it was read: the reason the log gave it (consume's own fallback).
    lost = [
        LeftOut(
            grant=grant,
            name=grant.download.display_name,
            reason=grant.refusal() or DownloadEvent.Outcome.LIMIT_REACHED,
        )
        for grant in wanted
        if grant.pk not in taken
    ]
    files = [
        (file.grant, file.key, file.filename, file.size)
        for file in contents.files
        if file.grant.pk in taken
    ]
    links = [link for link in contents.links if link.grant.pk in taken]
    return _bundle(order, files, links, [*contents.left_out, *lost])


def _order_grants(order: Order) -> list[DownloadGrant]:
    # The order page's order: by line, each line's files by position; then the files
    # attached to the order itself.
    return list(
        DownloadGrant.objects.filter(order=order)
        .select_related("download__media")
        .order_by(
            F("line__position").asc(nulls_last=True),
            F("line_id").asc(nulls_last=True),
            "download__position",
            "created_at",
            "id",
        )
    )


def _is_pending(state) -> bool:
    return state is not None and state.status == StampedCopy.Status.PENDING


def _stored_size(key: str) -> int | None:
    try:
        return storage.stored_size(key)
    except Exception:  # botocore raises many kinds (network, credentials)
        logger.exception("Could not read the size of %s for a download-all", key)
        return None


def _bundle(order: Order, files, links, left_out) -> Bundle:
    """The bundle, with unique names: the files' first, in order, then the links file."""
    used: set[str] = set()
    named = tuple(
        BundleFile(
            grant=grant,
            key=key,
            name=_unique(_zip_name(filename), used),
            filename=filename,
            size=size,
        )
        for grant, key, filename, size in files
    )
    links_name = _unique(LINKS_NAME, used) if links else LINKS_NAME
    return Bundle(
        order=order,
        files=named,
        links=tuple(links),
        left_out=tuple(left_out),
        links_name=links_name,
    )


# A pure function of the file's name, asked for every file each time the order page is shown.
@lru_cache(maxsize=4096)
def _zip_name(filename: str) -> str:
    """A name every system can extract: no path, no character Windows refuses, no leading
    dot (a hidden file on Unix) nor trailing dot or space (refused on Windows)."""
    name = storage.clean_filename(filename).translate(_UNSAFE_IN_NAMES).lstrip(". ").rstrip(". ")
    return name or "download"


def _unique(name: str, used: set[str]) -> str:
    """`name`, or "stem (2).ext", "stem (3).ext"… when a name already used (ignoring case,
    as Windows and macOS do) has it; records the one returned."""
    candidate = name
    if candidate.casefold() in used:  # the name is split only when it must change
        path = PurePosixPath(name)
        stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
        number = 1
        while candidate.casefold() in used:
            number += 1
            candidate = f"{stem} ({number}){suffix}"
    used.add(candidate.casefold())
    return candidate


def _one_line(text: str) -> str:
    return " ".join(text.split())
