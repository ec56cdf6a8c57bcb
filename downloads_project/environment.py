"""How the settings read the environment: django-environ, with this project's rules.

`settings.py` reads every variable through `env` below; `in_range` and `throttle_rate` are
the checks several settings share. A value that cannot be used stops the start with
ImproperlyConfigured naming the variable.
"""

import re
from contextlib import contextmanager
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured


class Env(environ.Env):
    """django-environ's reader, with the rules this project keeps for every variable.

    - An empty variable counts as unset: `DJANGO_SECURE_COOKIES=` keeps the default.
    - A value is taken as written: django-environ alone would read `$NAME` as the value of the
      variable NAME (and a secret key or password may start with `$`).
    - A value that does not parse stops the start with ImproperlyConfigured naming the
      variable. Booleans are 1/0, true/false, yes/no, on/off (also y/n, ok); anything else is
      refused. Lists are comma-separated, with spaces around items and empty items dropped.
    - URLs (`db_url`, `cache_url`, `email_url`) are parsed by django-environ; an unknown scheme
      or a bad port names the variable too, never echoing the URL (it may hold a password).
      `smtps://` is TLS from the first byte (RFC 8314), like `smtp+ssl://`; django-environ
      alone reads it as STARTTLS, which is `smtp+tls://` (or `submission://`) here.
    """

    BOOLEAN_FALSE_STRINGS = ("false", "off", "no", "n", "0")
    EMAIL_SCHEMES = {
        **environ.Env.EMAIL_SCHEMES,
        "submission": environ.Env.EMAIL_SCHEMES["smtp+tls"],
    }
    _KINDS = {int: "an integer", bool: "a boolean (1 or 0, true or false, yes or no, on or off)"}

    @classmethod
    def parse_value(cls, value, cast):
        words = cls.BOOLEAN_TRUE_STRINGS + cls.BOOLEAN_FALSE_STRINGS
        if cast is bool and isinstance(value, str) and value.strip().lower() not in words:
            raise ValueError(f"not a boolean: {value!r}")
        return super().parse_value(value, cast)

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        value = self.ENVIRON.get(var, "")
        if not value.strip():
            if default is self.NOTSET:
                raise ImproperlyConfigured(f"Set the {var} environment variable.")
            if not parse_default or default is None:
                return default
            value = default
        if cast is None and default is not None and default is not self.NOTSET:
            cast = type(default)
        try:
            return self.parse_value(value, cast)
        except (ValueError, TypeError) as exc:
            if cast in self._KINDS:
                message = f"{var} must be {self._KINDS[cast]}, got {value!r}."
            else:
                message = f"{var} cannot be read: {exc}"
            raise ImproperlyConfigured(message) from exc

    def list(self, var, cast=None, default=environ.Env.NOTSET):
        return [item for item in super().list(var, cast or str.strip, default) if item != ""]

    @contextmanager
    def _reading_url(self, var):
        try:
            yield
        except ImproperlyConfigured as exc:
            if var in str(exc):
                raise
            raise ImproperlyConfigured(f"{var} cannot be read: {exc}") from exc
        except (ValueError, KeyError) as exc:
            raise ImproperlyConfigured(f"{var} cannot be read: {exc}") from exc

    def db_url(self, var="DATABASE_URL", default=environ.Env.NOTSET, engine=None):
        with self._reading_url(var):
            url = self.str(var, default=default)
            scheme = urlparse(url).scheme
            if engine is None and scheme not in self.DB_SCHEMES:
                raise ImproperlyConfigured(
                    f"{var} has the unknown scheme {scheme!r}: use postgres://user:pass@host:5432/db"
                    " or sqlite:////absolute/path.sqlite3."
                )
            return self.db_url_config(url, engine=engine)

    def cache_url(self, var="CACHE_URL", default=environ.Env.NOTSET, backend=None):
        with self._reading_url(var):
            return super().cache_url(var, default, backend)

    def email_url(self, var="EMAIL_URL", default=environ.Env.NOTSET, backend=None):
        with self._reading_url(var):
            return super().email_url(var, default, backend)

    @classmethod
    def email_url_config(cls, url, backend=None):
        config = super().email_url_config(url, backend)
        scheme = (url if isinstance(url, cls.URL_CLASS) else urlparse(url)).scheme
        if scheme == "smtps":
            config.pop("EMAIL_USE_TLS", None)
            config["EMAIL_USE_SSL"] = True
        elif scheme == "submission":
            config["EMAIL_USE_TLS"] = True
        return config


env = Env()


def in_range(var: str, value, low, high=None, unit: str = ""):
    """`value`, read from the variable `var`, if it lies within low..high (high None: no
    upper bound); else ImproperlyConfigured naming the variable and the range. A value out of
    range stops the start instead of being silently moved to the nearest bound."""
    if value < low or (high is not None and value > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ImproperlyConfigured(f"{var} must be {span}{unit}, got {value}.")
    return value


def throttle_rate(var: str, default: str) -> str:
    """A throttle rate read from `var`: N/<period> with a period DRF reads (s, sec, second,
    m, min, minute, h, hour, d, day, plural too). Empty counts as unset (the default);
    surrounding spaces are dropped; anything else stops the start, naming the variable."""
    rate = env.str(var, default=default).strip()
    if not re.fullmatch(r"[0-9]{1,9}/(s|sec|second|m|min|minute|h|hour|d|day)s?", rate):
        raise ImproperlyConfigured(f"{var} must be N/sec, N/min, N/hour or N/day, got {rate!r}.")
    return rate
