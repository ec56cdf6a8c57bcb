"""Settings for the benchmark's servers: the project's own, plus the baseline view's URL.

Production never loads this module, so the baseline endpoint exists only under the bench.
"""

import os

# Production-like (DEBUG off, no query log) but without a real secret key or TLS redirects.
os.environ.setdefault("DOWNLOADS_DEV", "1")

from downloads_project.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.urls"
# Seeding pays orders; their emails would only add noise (and time) to the bench's output.
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
