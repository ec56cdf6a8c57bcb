"""Django's PostgreSQL backend with one change: a kept connection's health check asks the
database only when the connection has something to say (see base.DatabaseWrapper)."""
