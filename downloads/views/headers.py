"""The headers of the pages people see (the store, the buy page, the buyer's account pages):
one policy, written once, that every such view wears through `page_headers`."""

from functools import wraps

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
