"""The site's own pages and endpoints outside the API, one module per role:

- `delivery`: the download endpoint (`/downloads/<grant token>/`), the hot path;
- `store`: the store's home (`/`), the catalogue;
- `checkout`: buying through Stripe Checkout (`/buy/<id>/`) and Stripe's webhook;
- `shopify`: Shopify's webhooks (`/channels/shopify/webhooks`).

Each view validates its input, calls one service or selector and renders the answer.
"""
