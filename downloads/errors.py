"""The domain's one error: a rule of the store refused the input or the current state.

Services raise `ServiceError` with a namespaced code, `<entity>.<reason>`
(`order.number_taken`, `grant.in_use`, `product.invalid`), and never an HTTP status: the API
maps codes to statuses in one table (`downloads.api.exceptions.STATUS_BY_CODE`), the admin puts
the message on the form field that `attribute` names.
"""


class ServiceError(Exception):
    """A broken rule. `attribute` names the input at fault (None: the request as a whole);
    `reason` says what is wrong with that attribute (`blank`, `min_value`, …) when `code` is
    the generic `<entity>.invalid`."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        attribute: str | None = None,
        reason: str | None = None,
    ):
        if "." not in code:
            raise ValueError(f"Domain error codes are namespaced (<entity>.<reason>): {code!r}")
        super().__init__(message)
        self.message = message
        self.code = code
        self.attribute = attribute
        self.reason = reason

    @property
    def entity(self) -> str:
        """The code's namespace: `order` for `order.number_taken`."""
        return self.code.split(".", 1)[0]
