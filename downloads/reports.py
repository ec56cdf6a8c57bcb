"""Reports: the back office dashboard's figures, reads over many orders and downloads
(downloads and revenue per day, the products that sell and are downloaded most). Each is
one query, whatever the number of rows it sums."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import money
from .models import DownloadEvent, Order, OrderLine


def downloads_per_day(*, days: int = 30, now=None) -> list[tuple]:
    """Served downloads per day (in the current time zone) for the last `days` days, oldest
    first, days without downloads included as 0. One query."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(first, time.min), tz)
    counts = dict(
        DownloadEvent.objects.filter(outcome=DownloadEvent.Outcome.SERVED, at__gte=start)
        .annotate(day=TruncDate("at", tzinfo=tz))
        .order_by()
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)
    ]


def top_products_by_downloads(*, limit: int = 5, days: int = 30, now=None) -> list[dict]:
    """The products whose files were served most in the last `days` days: dicts with id,
    name and downloads, most first. One query."""
    since = (now or timezone.now()) - timedelta(days=days)
    return list(
        DownloadEvent.objects.filter(
            outcome=DownloadEvent.Outcome.SERVED,
            at__gte=since,
            grant__download__product__isnull=False,
        )
        .order_by()
        .values("grant__download__product_id", "grant__download__product__name")
        .annotate(downloads=Count("id"))
        .order_by("-downloads", "grant__download__product__name")
        .values(
            "downloads",
            id=F("grant__download__product_id"),
            name=F("grant__download__product__name"),
        )[:limit]
    )


# --- Money ------------------------------------------------------------------------------------


def _first_day(days: int, now) -> tuple:
    """The first of the last `days` days in the current time zone, and its local midnight."""
    first = timezone.localdate(now) - timedelta(days=days - 1)
    return first, timezone.make_aware(
        datetime.combine(first, time.min), timezone.get_current_timezone()
    )


@dataclass(frozen=True)
class RevenuePerDay:
    """Net revenue in one currency per day, oldest first, days without sales as 0, and the
    other currencies orders were paid in over those days (not counted in `days`)."""

    currency: str
    days: list[tuple]  # (date, minor units of `currency`)
    other_currencies: tuple[str, ...]


def revenue_per_day(*, days: int = 30, currency: str | None = None, now=None) -> RevenuePerDay:
    """Net revenue (paid minus refunded) per day for the last `days` days: for the orders
    paid on each day (current time zone), the sum of total − refunded_total, in `currency`
    (default: the store's). One query, whatever the number of orders."""
    currency = currency or money.store_currency()
    first, start = _first_day(days, now or timezone.now())
    rows = (
        Order.objects.filter(paid_at__gte=start)
        .annotate(day=TruncDate("paid_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("day", "currency")
        .annotate(net=Sum(F("total") - F("refunded_total")))
        .values_list("day", "currency", "net")
    )
    net, others = {}, set()
    for day, row_currency, amount in rows:
        if row_currency == currency:
            net[day] = amount
        else:
            others.add(row_currency)
    return RevenuePerDay(
        currency=currency,
        days=[
            (first + timedelta(days=i), net.get(first + timedelta(days=i), 0)) for i in range(days)
        ],
        other_currencies=tuple(sorted(others)),
    )


def top_products_by_revenue(
    *, limit: int = 10, days: int = 30, currency: str | None = None, now=None
) -> list[dict]:
    """The products that earned most over the days `revenue_per_day` charts: the totals of
    the lines not refunded of orders paid then in `currency` (default: the store's); dicts
    with id, name and revenue (minor units), most first. One query."""
    _, start = _first_day(days, now or timezone.now())
    return list(
        OrderLine.objects.filter(
            order__paid_at__gte=start,
            order__currency=currency or money.store_currency(),
            refunded_at__isnull=True,
            total__gt=0,
        )
        .order_by()
        .values("product_id", "product__name")
        .annotate(revenue=Sum("total"))
        .order_by("-revenue", "product__name")
        .values("revenue", id=F("product_id"), name=F("product__name"))[:limit]
    )
