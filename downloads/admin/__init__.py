"""The merchant's back office: one module per model family, registered on Django's admin
site; every change goes through `downloads.services`, as in the API.

The imports below are the registration: importing each module runs its `@admin.register`
(Django's autodiscover imports this package). Nothing is re-exported; import names from the
module that defines them (`downloads.admin.media`, …).
"""

from . import (  # noqa: F401
    catalogue,
    channels,
    grants,
    licences,
    media,
    orders,
    site,
    versions,
    webhooks,
    workers,
)
