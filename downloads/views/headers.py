"""The headers of the pages people see (the store, the buy page, the buyer's account pages):
one policy, written once, that every such view wears through `page_headers`."""

from functools import wraps
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from downloads import storage

# The pages load nothing but our own stylesheet; no script (but the order page's own file,
# below), frame or base change. Forms post
# to our own origin, except the buy page's, whose answer is a 303 to Stripe's payment page:
# browsers apply `form-action` to the redirect too, so that page leaves form targets open.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
CHECKOUT_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The buyer's order page runs one script of our own (accounts/copy.js: the licence keys'
# *Copy* buttons), loaded from our origin: no inline script, handler, eval or other origin.
ORDER_PAGE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def page_headers(view=None, *, csp: str = CONTENT_SECURITY_POLICY):
    """Headers of every page for people: a strict CSP, never cached (the account pages hold
    secret links, the buy page a CSRF token), not indexed, and a Referer only to our own
    origin (so the download endpoint can link back to the order page, and nothing else
    ever sees the order URL). Use as `@page_headers` or `@page_headers(csp=...)`."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            response["Content-Security-Policy"] = csp
            response["Cache-Control"] = "private, no-store"
            response["Referrer-Policy"] = "same-origin"
            response["X-Robots-Tag"] = "noindex, nofollow"
            return response

        return wrapped

    return decorate(view) if view is not None else decorate


# --- Pages the libraries render: the Django admin, the API docs, the browsable API ----------
# The same kind of policy, worn through middleware (downloads/middleware.py) where a view of
# ours does not set one. No inline script and no `eval` on any of them: Django's admin and
# drf-spectacular's split Swagger view load every script from our origin. Their templates
# each carry one inline <style> block, allowed by its hash (tests recompute both from the
# installed templates, so an upgrade that changes them fails loudly, not silently unstyled).
DJANGO_CHANGE_LIST_STYLE = "'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='"
SWAGGER_UI_STYLE = "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"
_LIBRARY_PAGE_RULES = (
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
)
# The admin: its scripts (and the admin's JavaScript catalogue), stylesheets, the dashboard's
# SVG charts (inline markup, no script), and fetches to our origin (autocomplete, the media
# upload's start and complete calls). On S3, `admin_content_security_policy` adds the bucket's
# origin to connect-src: the media page sends large files straight to it.
ADMIN_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {DJANGO_CHANGE_LIST_STYLE}; "
    f"{_LIBRARY_PAGE_RULES}"
)
# /api/docs/: Swagger UI from drf-spectacular-sidecar and its init script from the same URL
# (`?script=`); "Try it out" fetches our own API only.
DOCS_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {SWAGGER_UI_STYLE}; "
    f"{_LIBRARY_PAGE_RULES}"
)
# DRF's browsable API pages: scripts from our origin only, but DRF's templates put `style`
# attributes and the code highlighter's <style> inline, so styles may be inline (a style
# cannot run script; every script source is still our origin).
BROWSABLE_API_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    f"{_LIBRARY_PAGE_RULES}"
)


def admin_content_security_policy() -> str:
    """The admin's policy, with the S3 bucket's origin in connect-src when media is on S3
    (the media page's large files go from the browser straight to it). The origin is that
    of a presigned POST: signed locally, no network call."""
    if not storage.is_s3():
        return ADMIN_CONTENT_SECURITY_POLICY
    try:
        url = storage.direct_upload_instructions(
            key="csp-origin",
            byte_size=1,
            content_type="application/octet-stream",
            expires_in=60,
            local_url="",
        )["upload_url"]
    except (BotoCoreError, ClientError):  # no credentials yet: nothing can be uploaded
        return ADMIN_CONTENT_SECURITY_POLICY
    parts = urlsplit(url)
    return ADMIN_CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'", f"connect-src 'self' {parts.scheme}://{parts.netloc}"
    )
