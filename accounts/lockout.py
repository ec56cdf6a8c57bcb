"""Login protection: how django-axes counts failed logins here, and what a locked-out visitor
gets. Every way in with a password goes through it: the admin's login page, the account
login page (both by the AxesMiddleware and the AxesStandaloneBackend that comes first in
AUTHENTICATION_BACKENDS) and HTTP Basic on the API (accounts.authentication).

Rules owned here: failures are counted by account and by client address, each on its own
(AXES_LOCKOUT_PARAMETERS); after DOWNLOADS_LOGIN_FAILURE_LIMIT of them within
DOWNLOADS_LOGIN_COOLOFF seconds, that account and that address are refused, the right
password too, until DOWNLOADS_LOGIN_COOLOFF seconds after the last counted failure. Refused
attempts are not counted (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off), so a lockout
ends on time, one cool-off after the failure that started it, whatever is tried meanwhile (at
most LIMIT guesses per window, for an account and for an address). The counts live in the
database (axes' database handler), shared by every process and app server. API keys never
go through here: they are 256-bit secrets, not passwords (throttled per address instead).
"""

import copy
from datetime import timedelta

from django.conf import settings
from django.http import QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil

from downloads.views.headers import page_headers

from .models import User, normalize_email


def failure_limit(request, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: failed logins before a lockout (read at each attempt)."""
    return settings.DOWNLOADS_LOGIN_FAILURE_LIMIT


def cool_off(request=None) -> timedelta:
    """AXES_COOLOFF_TIME: how long failures count, and a lockout lasts after the last one."""
    return timedelta(seconds=settings.DOWNLOADS_LOGIN_COOLOFF)


def attempted_email(request, credentials=None) -> str | None:
    """AXES_USERNAME_CALLABLE: the account an attempt is for, in its one stored form.

    The login forms post `username` (Django's AuthenticationForm), HTTP Basic passes the
    user model's USERNAME_FIELD (`email`): both count against the same account, whatever
    the case or spaces typed."""
    if credentials:
        value = credentials.get(User.USERNAME_FIELD) or credentials.get("username")
    else:
        value = request.POST.get("username") or request.POST.get(User.USERNAME_FIELD)
    # What no account can have (a NUL, past the column's 255 characters) is still counted,
    # by address: the attempt row must be writable, on PostgreSQL too.
    return normalize_email(value).replace("\x00", "\ufffd")[:255] or None


def login_attempt(request):
    """The request axes records an API login attempt on: a shallow copy of the HttpRequest
    under DRF's, with empty form data.

    Axes keeps the (masked) POST data of a failed attempt; reading it from the real request
    would parse the body before a wrong password is refused, a whole multipart upload
    included. The copy also keeps axes' per-attempt flags off the real request, so the
    API's own 429 (not the page's lockout response) answers it."""
    attempt = copy.copy(getattr(request, "_request", request))
    attempt.POST = QueryDict()
    return attempt


def is_locked_out(attempt) -> bool:
    """Whether axes refused `attempt` (a request passed to `authenticate`), or locked it out
    with this very failure."""
    return bool(getattr(attempt, "axes_locked_out", False))


def retry_after() -> int:
    """Seconds a locked-out visitor should wait (Retry-After): the whole cool-off, the
    longest the lockout can still last."""
    return settings.DOWNLOADS_LOGIN_COOLOFF


def locked_out_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the page a locked-out login (admin or account) gets, 429 with
    Retry-After, instead of the login form."""
    wait = retry_after()
    now = timezone.now()
    response = page_headers(render)(
        request,
        "registration/locked_out.html",
        {"wait": timeuntil(now + timedelta(seconds=wait), now)},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
