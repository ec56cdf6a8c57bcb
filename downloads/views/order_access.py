"""The order pages a browser has opened, remembered so the download endpoint's pages (410,
503) can send a guest back to the order page they came from.

A download link may be shared on its own (a forum post, a forwarded email), so a refusal
page must never link to the whole order for whoever holds just that link. What proves a
visitor holds the order page: the logged-in owner, a same-origin Referer from it
(delivery.py), or this signed cookie, which the order page sets in the browser that opened
it by its secret link. The cookie holds order ids (not the pages' secret tokens), signed
so it cannot be forged, HttpOnly and SameSite=Lax; it never grants anything by itself,
it only decides whether a refusal page shows a link the browser already had.
"""

from django.conf import settings

COOKIE_NAME = "order_pages"
_SALT = "downloads.order_pages"
# The most recent pages kept (a cookie stays far under browsers' 4 KB limit), and how long.
KEEP = 20
MAX_AGE = 90 * 24 * 60 * 60


def _opened(request) -> list[str]:
    value = request.get_signed_cookie(COOKIE_NAME, default="", salt=_SALT, max_age=MAX_AGE)
    return [order_id for order_id in value.split(".") if order_id]


def _id(order) -> str:
    return str(order.pk).replace("-", "")


def order_page_opened(request, order) -> bool:
    """Whether this browser opened `order`'s page by its secret link (the signed cookie)."""
    return _id(order) in _opened(request)


def remember_order_page(request, response, order) -> None:
    """Mark `order`'s page as opened in this browser (called by the order page)."""
    mine = _id(order)
    opened = [mine, *(other for other in _opened(request) if other != mine)][:KEEP]
    response.set_signed_cookie(
        COOKIE_NAME,
        ".".join(opened),
        salt=_SALT,
        max_age=MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
