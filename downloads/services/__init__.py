"""Every write to the store, one module per concept; each module's docstring names the rules
it owns. Callers import from the module that owns the function (there are no re-exports):

    catalogue  products, variants, downloads        media     stored files and uploads
    orders     create, pay, cancel, refund, attach  grants    issue, reset, extend, revoke
    consume    the download rule and its log        versions  a new file for a download
    backfills  files added after the sale           webhooks  the outbox and its endpoints
    common     input rules several services share

Functions are keyword-only and named `<entity>_<action>`; they raise
`downloads.errors.ServiceError` with a namespaced code for anything a client or merchant can
get wrong.
"""
