"""The Content-Security-Policy of the pages that no view of ours renders one by one: every
page of the Django admin and the merchant API's browsable pages. The policies themselves are
defined with the others in downloads/views/headers.py.

A response that already has a policy keeps it: the buyer pages and the API docs set theirs
with `page_headers`, served files theirs where they are built."""

from .views.headers import BROWSABLE_API_CONTENT_SECURITY_POLICY, admin_content_security_policy

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Adds the admin's policy to everything under the admin's URLs (login, index,
    changelists, forms, its JavaScript catalogue), and the browsable API's to HTML answers
    of the API."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.has_header(HEADER):
            return response
        # Known after URL resolution; None when nothing matched (a 404 outside every app).
        match = getattr(request, "resolver_match", None)
        namespace = match.namespace if match is not None else ""
        if namespace == "admin":
            response[HEADER] = admin_content_security_policy()
        elif namespace.split(":")[0] == "api" and response.get("Content-Type", "").startswith(
            "text/html"
        ):
            response[HEADER] = BROWSABLE_API_CONTENT_SECURITY_POLICY
        return response
