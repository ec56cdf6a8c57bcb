"""Input and output serializers of the merchant API, one module per resource family (as
views/ is): `common` (the fields and envelopes every resource shares), `catalogue`
(products, variants, downloads), `media`, `orders`, `grants` (and their events),
`customers`, `webhooks`, `versions` (a download's versions and backfills), `licences` (licence
keys, their instances, the keys on order lines).

Inputs are plain serializers that validate and bound every value (so nothing a client sends
can make the database fail) and resolve ids to objects (order lines through
`selectors.line_target`), so a view hands the service objects; outputs render the
vendors' shapes: SureCart's download, EasyCart's DownloadItem (our grant), times as Unix
seconds, amounts as integers in minor units.
"""
