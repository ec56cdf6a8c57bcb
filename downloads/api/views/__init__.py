"""The merchant REST API's viewsets (/api/v1/), one module per concept: `base` (what every
resource shares), `catalogue`, `media`, `orders`, `grants`, `customers`, `webhooks`,
`versions` and `licences` (licence keys and their instances). Callers import each view from
the module that owns it."""
