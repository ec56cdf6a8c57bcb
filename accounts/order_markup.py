"""The order page's markup made in Python: each line's card with its files and licence
keys, the files attached to the order, the *Download all* notice and the receipt's rows.

Owns that HTML, byte for byte what templates/accounts/order_detail.html (which lays out the
rest of the page and places these) and its includes made. It owns no rule: whether a file
can be downloaded and why not (`DownloadGrant.refusal_labels`), what a file is called
(`Download.display_name`) and what kind it is (`store.file_kind`), the days left
(`store.days_left`), a key's status (`LicenseKey.status`), its activations left, how the
order was paid (`Order.paid_via`) and what the ZIP holds (`bundles.bundle_contents`) are
asked of their owners, as the templates did.

Why Python: through the template engine one file's row cost about 100 µs (an order of 30
files spent 3 ms on its rows alone, of a 6.4 ms page), mostly in resolving variables and
tags. Here the same bytes come from the same sources: the words are the same messages
(gettext, with the msgids `{% translate %}` and `{% blocktranslate trimmed %}` made, so the
catalogue keeps them), every value is escaped as autoescaping escaped it, numbers are
localised as templates localise them, dates are the `date` filter's ("c" and "j F Y", in
the current time zone), sizes are `filesizeformat`'s and amounts the `money` filter's. What
does not change within a page (the language, the time zone, the download URL's prefix) is
looked up once per page, in `OrderMarkup`; what a language fixes (its constant words, a
day's date, a size's words) is kept per language until a setting changes.
tests/accounts/test_order_markup.py holds the expected HTML of every state.
"""

import html
from datetime import date
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from downloads.models import LicenseKey, Order
from downloads.templatetags.money import money

from .templatetags.store import days_left, file_kind


def escape(value) -> str:
    """What autoescaping makes of a value: django.utils.html.escape's own characters, without
    its lazy-string wrapper and SafeString (a page of 30 files escapes some 120 values)."""
    return html.escape(str(value))


# A grant token's characters (secrets.token_urlsafe): reverse() would neither quote nor
# refuse them, so the download URL is the reversed prefix and the token. Any other token
# goes through reverse() itself.
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_PROBE = "token"


class _Words:
    """The page's constant words in one language, escaped as `{% translate %}` escapes."""

    def __init__(self):
        self.external_link = escape(gettext("External link"))
        self.unlimited_downloads = escape(gettext("Unlimited downloads"))
        self.unlimited_visits = escape(gettext("Unlimited visits"))
        self.less_than_a_day = escape(gettext("(less than a day left)"))
        self.never_expires = escape(gettext("Never expires"))
        self.stamped = escape(gettext("Stamped with your email"))
        self.download = escape(gettext("Download"))
        self.open_link = escape(gettext("Open link"))
        self.copied = escape(gettext("Copied"))
        self.selected = escape(gettext("Selected: press Ctrl+C (⌘C on a Mac) to copy"))
        self.copy = escape(gettext("Copy"))
        self.disabled_refunded = escape(gettext("Disabled (refunded)"))
        self.disabled = escape(gettext("Disabled"))
        self.expired = escape(gettext("Expired"))
        self.active = escape(gettext("Active"))
        self.inactive = escape(gettext("Not activated yet"))
        self.refunded = escape(gettext("Refunded"))
        self.awaiting_payment = escape(gettext("Files appear here once the payment is confirmed."))
        self.no_files_to_download = escape(gettext("This item has no files to download."))
        self.no_files = escape(gettext("No files available."))
        self.download_all = escape(gettext("Download all"))
        self.not_included = escape(gettext("Not included now:"))
        self.subtotal = escape(gettext("Subtotal"))
        self.tax = escape(gettext("Tax"))
        self.total = escape(gettext("Total"))
        self.not_paid_cancelled = escape(gettext("Not paid: the order was cancelled."))
        self.not_paid = escape(gettext("Not paid yet."))


# Keyed by the language they were made in (its argument); emptied when a setting changes.
@lru_cache(maxsize=32)
def _words(language) -> _Words:
    return _Words()


@lru_cache(maxsize=4096)
def _day(language, day: date) -> str:
    """`moment|date:"j F Y"` (escaped) for every moment of that (local) day, in that
    language: the format reads only the day, month and year."""
    return escape(formats.date_format(day, "j F Y"))


@lru_cache(maxsize=4096)
def _size(language, byte_size) -> str:
    """`byte_size|filesizeformat` (escaped) in that language."""
    return escape(filesizeformat(byte_size))


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    # Formats, time zones and catalogues are settings: what was kept may no longer hold.
    _words.cache_clear()
    _day.cache_clear()
    _size.cache_clear()


class OrderMarkup:
    """The markup of one order's page, in the language and time zone now active."""

    def __init__(self, order: Order):
        self.order = order
        self.language = translation.get_language()
        self.words = _words(self.language)
        self.use_tz = settings.USE_TZ
        self.zone = timezone.get_current_timezone()
        # Templates localise numbers; without thousand separators an int is its digits.
        self.number = formats.localize if settings.USE_THOUSAND_SEPARATOR else str
        # The download URL ends with its token (downloads/urls.py): the rest is its prefix.
        probe = reverse("downloads:download", args=[_PROBE])
        suffix = f"/{_PROBE}/"
        self.download_prefix = escape(probe[: 1 - len(suffix)]) if probe.endswith(suffix) else None

    # --- values, as templates render them -------------------------------------------------

    def _moment(self, moment) -> tuple[str, str]:
        """`moment|date:"c"` and `moment|date:"j F Y"`, escaped: the `date` filter's, in the
        current time zone (template_localtime) for an aware moment."""
        if self.use_tz and moment.utcoffset() is not None:
            moment = moment.astimezone(self.zone)
        # The "c" format is the moment's isoformat(); no character of it needs escaping.
        return moment.isoformat(), _day(self.language, moment.date())

    def _download_url(self, token: str) -> str:
        if self.download_prefix is not None and _URL_SAFE.issuperset(token):
            return f"{self.download_prefix}{token}/"
        return escape(reverse("downloads:download", args=[token]))

    def _money(self, amount) -> str:
        return escape(money(amount, self.order.currency))

    # --- once a page -----------------------------------------------------------------------

    def download_all(self, bundle) -> SafeString:
        """The *Download all* notice (`<div class="download-all">`): the button, what the ZIP
        holds (`bundle`, a `bundles.bundle_contents`) and what it leaves out, and why."""
        words = self.words
        files, links = len(bundle.files), len(bundle.links)
        counts = {
            "files": self.number(files),
            "links": self.number(links),
            "size": _size(self.language, bundle.byte_size),
        }
        if links:
            what = ngettext(
                "%(files)s files and a list of %(links)s link in one ZIP (%(size)s); each file "
                "counts as one download.",
                "%(files)s files and a list of %(links)s links in one ZIP (%(size)s); each file "
                "counts as one download.",
                links,
            )
        else:
            what = ngettext(
                "%(files)s file in one ZIP (%(size)s); it counts as one download.",
                "%(files)s files in one ZIP (%(size)s); each file counts as one download.",
                files,
            )
        left_out = ""
        if bundle.left_out:
            items = ", ".join(
                [
                    '<span class="left-out">%s</span>'
                    % (
                        gettext("%(name)s (%(why)s)")
                        % {"name": escape(item.name), "why": escape(item.label)}
                    )
                    for item in bundle.left_out
                ]
            )
            left_out = (
                f'\n          <p class="download-all-left-out">{words.not_included} {items}.</p>'
                f"\n        "
            )
        url = escape(reverse("accounts:order_download_all", args=[self.order.access_token]))
        return SafeString(
            f'<div class="download-all">\n'
            f'      <a class="button" href="{url}" rel="nofollow"'
            f' aria-describedby="download-all-what">{words.download_all}</a>\n'
            f"      <div>\n"
            f'        <p id="download-all-what">{what % counts}</p>\n'
            f"        {left_out}\n"
            f"      </div>\n"
            f"    </div>"
        )

    def receipt(self) -> SafeString:
        """The receipt's rows (`<li class="order-row">`): subtotal, tax, total, what was
        refunded, and when and how the order was paid."""
        order, words = self.order, self.words
        refund = ""
        if order.refunded_total:
            if order.refunded_at:
                iso, when = self._moment(order.refunded_at)
                refunded = gettext('Refunded on <time datetime="%(iso)s">%(when)s</time>') % {
                    "iso": iso,
                    "when": when,
                }
            else:
                refunded = words.refunded
            refund = (
                f'\n        <li class="order-row refunded"><span>{refunded}</span>'
                f'<span class="amount">{self._money(order.refunded_total)}</span></li>\n      '
            )
        if order.paid_at:
            iso, when = self._moment(order.paid_at)
            via = order.paid_via
            if via:
                paid = gettext('Paid <time datetime="%(iso)s">%(when)s</time> via %(via)s') % {
                    "iso": iso,
                    "when": when,
                    "via": escape(via),
                }
            else:
                paid = gettext('Paid <time datetime="%(iso)s">%(when)s</time>') % {
                    "iso": iso,
                    "when": when,
                }
        elif order.status == Order.Status.CANCELLED:
            paid = words.not_paid_cancelled
        else:
            paid = words.not_paid
        return SafeString(
            f'<li class="order-row"><span>{words.subtotal}</span>'
            f'<span class="amount">{self._money(order.subtotal)}</span></li>\n'
            f'      <li class="order-row"><span>{words.tax}</span>'
            f'<span class="amount">{self._money(order.tax)}</span></li>\n'
            f'      <li class="order-row total"><strong>{words.total}</strong>'
            f'<strong class="amount">{self._money(order.total)}</strong></li>\n'
            f"      {refund}\n"
            f'      <li class="order-row payment muted"><span>{paid}</span></li>'
        )

    # --- a line's card --------------------------------------------------------------------

    def line(self, line, number: int) -> SafeString:
        """One line's card (`<section class="card">`): its name, variant and refund, price,
        its files (or why there are none) and its licence keys. `number` counts the lines
        from 1 (the card's ids)."""
        order, words, n = self.order, self.words, self.number(number)
        status = order.status
        name = escape(line.name)
        variant = escape(line.variant_name)
        refunded_at, refunded_quantity = line.refunded_at, line.refunded_quantity
        note = ""
        if line.variant_name or refunded_at or refunded_quantity:
            if refunded_at:
                if line.quantity > 1:
                    refund = gettext("Refunded (all %(quantity)s)") % {
                        "quantity": self.number(line.quantity)
                    }
                else:
                    refund = words.refunded
                refund = f'<strong class="refunded">{refund}</strong>'
            elif refunded_quantity:
                refund = gettext("%(refunded)s of %(quantity)s refunded") % {
                    "refunded": self.number(refunded_quantity),
                    "quantity": self.number(line.quantity),
                }
                refund = f'<strong class="refunded">{refund}</strong>'
            else:
                refund = ""
            dot = " · " if line.variant_name and (refunded_at or refunded_quantity) else ""
            note = f"\n            <p>{variant}{dot}{refund}</p>\n          "
        keys = line.license_keys.all()
        grants = line.grants.all()
        if status == Order.Status.PENDING:
            files = f'\n        <p class="empty">{words.awaiting_payment}</p>\n      '
        elif grants:
            rows = "".join([self.file(grant) for grant in grants])
            files = f'\n        <ul class="files">\n          {rows}\n        </ul>\n      '
        elif keys:  # the item is its licence keys, below
            files = "\n      "
        elif status == Order.Status.PAID and not refunded_at:
            files = f'\n        <p class="empty">{words.no_files_to_download}</p>\n      '
        else:
            files = f'\n        <p class="empty">{words.no_files}</p>\n      '
        key_list = ""
        if keys and status != Order.Status.PENDING:
            title = ngettext("Licence key", "Licence keys", len(keys))
            rows = "".join([self.licence_key(key, line) for key in keys])
            key_list = (
                f'\n        <div class="licence-keys">\n'
                f'          <h4 class="licence-keys-title" id="keys-{n}">{title}</h4>\n'
                f'          <ul class="keys" aria-labelledby="keys-{n}">\n'
                f"            {rows}\n"
                f"          </ul>\n"
                f"        </div>\n      "
            )
        return SafeString(
            f'<section class="card" aria-labelledby="line-{n}">\n'
            f'      <header class="card-header">\n'
            f"        <div>\n"
            f'          <h3 id="line-{n}">{name}</h3>\n'
            f"          {note}\n"
            f"        </div>\n"
            f'        <p class="line-amount"><span class="line-price">{self._money(line.price)}'
            f" × {self.number(line.quantity)}</span>"
            f' <strong class="line-total">{self._money(line.total)}</strong></p>\n'
            f"      </header>\n"
            f"      \n"
            f"      {files}\n"
            f"      {key_list}\n"
            f"      \n"
            f"    </section>"
        )

    # --- a file's row ---------------------------------------------------------------------

    def files(self, grants) -> SafeString:
        """The rows of these grants' files, one after the other."""
        return SafeString("".join([self.file(grant) for grant in grants]))

    def file(self, grant) -> SafeString:
        """One file's row (`<li class="file">`): kind, name, size, downloads used, expiry,
        stamped, updated; a *Download* (or *Open link*) button, disabled with the reason
        when the grant is refused."""
        words = self.words
        download = grant.download
        refused = grant.refusal_labels
        is_file = download.media_id is not None
        name = escape(download.display_name)
        size = _size(self.language, download.media.byte_size) if is_file else words.external_link
        limit = grant.download_limit
        if limit:
            counts = {"used": self.number(grant.download_count), "limit": self.number(limit)}
            if is_file:
                used = ngettext(
                    "%(used)s of %(limit)s download used",
                    "%(used)s of %(limit)s downloads used",
                    limit,
                )
            else:
                used = ngettext(
                    "%(used)s of %(limit)s visit used", "%(used)s of %(limit)s visits used", limit
                )
            used %= counts
        else:
            used = words.unlimited_downloads if is_file else words.unlimited_visits
        expires_at = grant.expires_at
        if expires_at:
            iso, when = self._moment(expires_at)
            if refused and refused.filter == "expired":
                expiry = gettext('Expired on <time datetime="%(iso)s">%(when)s</time>') % {
                    "iso": iso,
                    "when": when,
                }
            else:
                expiry = gettext('Available until <time datetime="%(iso)s">%(when)s</time>') % {
                    "iso": iso,
                    "when": when,
                }
                days = days_left(expires_at)
                if not refused and days is not None:
                    if days:
                        left = ngettext("(%(days)s day left)", "(%(days)s days left)", days) % {
                            "days": self.number(days)
                        }
                    else:
                        left = words.less_than_a_day
                    expiry += f' <span class="days-left">{left}</span>'
        else:
            expiry = words.never_expires
        stamped = f'<li class="stamped">{words.stamped}</li>' if grant.stamped else ""
        updated = ""
        if grant.updated_since_paid:
            iso, when = self._moment(download.file_updated_at)
            if grant.changelog:
                updated = gettext(
                    'Updated on <time datetime="%(iso)s">%(when)s</time>: '
                    '<span class="changelog">%(changelog)s</span>'
                ) % {"iso": iso, "when": when, "changelog": escape(grant.changelog)}
            else:
                updated = gettext('Updated on <time datetime="%(iso)s">%(when)s</time>') % {
                    "iso": iso,
                    "when": when,
                }
            updated = f'<li class="updated">{updated}</li>'
        label = words.download if is_file else words.open_link
        if refused:
            pk = escape(grant.pk)
            action = (
                f'\n      <button type="button" class="button" disabled'
                f' aria-describedby="reason-{pk}">{label}'
                f'<span class="visually-hidden"> {name}</span></button>\n'
                f'      <p class="file-reason" id="reason-{pk}">{escape(refused.reason)}</p>\n    '
            )
        else:
            action = (
                f'\n      <a class="button" href="{self._download_url(grant.token)}"'
                f' rel="nofollow">{label}<span class="visually-hidden"> {name}</span></a>\n    '
            )
        return SafeString(
            f'\n<li class="file">\n'
            f'  <span class="file-icon" aria-hidden="true">{escape(file_kind(download).upper())}'
            f"</span>\n"
            f"  <div>\n"
            f'    <p class="file-name">{name}</p>\n'
            f'    <ul class="file-meta">\n'
            f"      <li>{size}</li>\n"
            f'      <li class="downloads-used">{used}</li>\n'
            f'      <li class="expiry">{expiry}</li>\n'
            f"      {stamped}\n"
            f"      {updated}\n"
            f"    </ul>\n"
            f"  </div>\n"
            f'  <div class="file-action">\n'
            f"    {action}\n"
            f"  </div>\n"
            f"</li>\n\n"
        )

    # --- a licence key's row --------------------------------------------------------------

    def licence_key(self, key: LicenseKey, line) -> SafeString:
        """One licence key's row (`<li class="licence-key">`): the key and its *Copy*
        button, its status, activations used and left, and its expiry."""
        words = self.words
        status = str(key.status)
        pk = escape(key.pk)
        unit_of = gettext("licence key %(unit)s for %(name)s") % {
            "unit": self.number(key.unit),
            "name": escape(line.name),
        }
        if status == LicenseKey.Status.DISABLED:
            state = words.disabled_refunded if key.unit_refunded else words.disabled
        elif status == LicenseKey.Status.EXPIRED:
            state = words.expired
        elif status == LicenseKey.Status.ACTIVE:
            state = words.active
        else:
            state = words.inactive
        limit, usage = key.activation_limit, key.activation_usage
        if limit:
            usage_words = ngettext(
                "%(used)s of %(limit)s activation used",
                "%(used)s of %(limit)s activations used",
                limit,
            ) % {"used": self.number(usage), "limit": self.number(limit)}
        else:
            usage_words = ngettext(
                "%(used)s activation (unlimited)", "%(used)s activations (unlimited)", usage
            ) % {"used": self.number(usage)}
        usable = status not in (LicenseKey.Status.DISABLED, LicenseKey.Status.EXPIRED)
        left = ""
        if limit and usable:
            activations_left = key.activations_left
            left = ngettext("%(left)s left", "%(left)s left", activations_left) % {
                "left": self.number(activations_left)
            }
            left = f'<li class="key-left">{left}</li>'
        expiry = ""
        if status != LicenseKey.Status.DISABLED:
            if key.expires_at:
                iso, when = self._moment(key.expires_at)
                if status == LicenseKey.Status.EXPIRED:
                    expiry = gettext('Expired on <time datetime="%(iso)s">%(when)s</time>')
                else:
                    expiry = gettext('Valid until <time datetime="%(iso)s">%(when)s</time>')
                expiry %= {"iso": iso, "when": when}
            else:
                expiry = words.never_expires
            expiry = f'<li class="key-expiry">{expiry}</li>'
        return SafeString(
            f'\n<li class="licence-key licence-key-{escape(status)}">\n'
            f'  <div class="key-row">\n'
            f'    <code class="key-text" id="key-{pk}">{escape(key.key)}</code>\n'
            f"    \n"
            # Shown by accounts/copy.js; without JavaScript the key is selected by a click.
            f'    <button type="button" class="button button-secondary copy-button"'
            f' data-copy-target="key-{pk}" data-copy-status="copied-{pk}"'
            f' data-copied="{words.copied}" data-selected="{words.selected}" hidden>'
            f'{words.copy}<span class="visually-hidden"> {unit_of}</span></button>\n'
            f'    <span class="copy-status" id="copied-{pk}" role="status"'
            f' aria-live="polite"></span>\n'
            f"  </div>\n"
            f'  <ul class="key-meta">\n'
            f'    <li class="key-status">{state}</li>\n'
            f'    <li class="key-usage">{usage_words}</li>\n'
            f"    {left}\n"
            f"    {expiry}\n"
            f"  </ul>\n"
            f"</li>\n\n"
        )
