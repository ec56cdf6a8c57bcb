"""The Content-Security-Policy of the pages the libraries render (every admin page, the API
docs, the browsable API), defined in downloads/views/headers.py beside the buyer pages'; and
headless Chromium loading those pages with not one violation, still working."""

import base64
import hashlib
import re
from pathlib import Path

import pytest
from django.template.loader import get_template
from django.urls import reverse

from downloads import storage
from downloads.views.headers import (
    ADMIN_CONTENT_SECURITY_POLICY,
    BROWSABLE_API_CONTENT_SECURITY_POLICY,
    CONTENT_SECURITY_POLICY,
    DJANGO_CHANGE_LIST_STYLE,
    DOCS_CONTENT_SECURITY_POLICY,
    SWAGGER_UI_STYLE,
)
from tests import factories

PASSWORD = "correct horse battery"  # the factories'


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: [sources]}."""
    found = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def admin_pages(order) -> dict[str, str]:
    """One URL of each kind of admin page."""
    return {
        "index": reverse("admin:index"),
        "changelist": reverse("admin:downloads_order_changelist"),
        "changelist without actions": reverse("admin:downloads_downloadevent_changelist"),
        "change form": reverse("admin:downloads_order_change", args=[order.pk]),
        "add form": reverse("admin:downloads_product_add"),
        "history": reverse("admin:downloads_order_history", args=[order.pk]),
        "javascript catalogue": reverse("admin:jsi18n"),
        "unknown admin page": "/admin/downloads/nothing-here/",
    }


# --- The policies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [ADMIN_CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY],
    ids=["admin", "docs"],
)
def test_the_admin_and_docs_policies_allow_scripts_from_our_origin_only_and_no_framing(policy):
    found = directives(policy)
    assert found["default-src"] == ["'none'"]
    assert found["script-src"] == ["'self'"]
    assert found["object-src"] == ["'none'"]
    assert found["frame-ancestors"] == ["'none'"]
    assert found["base-uri"] == ["'self'"]
    assert found["form-action"] == ["'self'"]
    assert found["connect-src"] == ["'self'"]
    # Styles: our origin and one inline block, by its hash.
    assert found["style-src"][0] == "'self'" and len(found["style-src"]) == 2
    assert found["style-src"][1].startswith("'sha256-")
    for loose in ("unsafe-inline", "unsafe-eval", "unsafe-hashes", "strict-dynamic", "*", "http"):
        assert loose not in policy


def test_the_browsable_api_policy_allows_scripts_from_our_origin_only():
    found = directives(BROWSABLE_API_CONTENT_SECURITY_POLICY)
    assert found["script-src"] == ["'self'"]
    assert "unsafe-eval" not in BROWSABLE_API_CONTENT_SECURITY_POLICY
    for name in ("object-src", "frame-ancestors"):
        assert found[name] == ["'none'"]
    assert found["base-uri"] == found["form-action"] == ["'self'"]


@pytest.mark.parametrize(
    "template, allowed",
    [
        ("admin/change_list.html", DJANGO_CHANGE_LIST_STYLE),
        ("drf_spectacular/swagger_ui.html", SWAGGER_UI_STYLE),
    ],
)
def test_each_allowed_style_hash_is_that_of_the_installed_templates_inline_style(template, allowed):
    # A library upgrade that changes its inline style fails here, not silently in browsers.
    source = Path(get_template(template).origin.name).read_text()
    blocks = re.findall(r"<style>(.*?)</style>", source, flags=re.S)
    assert len(blocks) == 1
    digest = base64.b64encode(hashlib.sha256(blocks[0].encode()).digest()).decode()
    assert allowed == f"'sha256-{digest}'"


# --- Which answers wear which policy ------------------------------------------------------


def test_every_kind_of_admin_page_answers_with_the_admin_policy(client, db):
    order = factories.paid_order_with_files(lines=1)
    anonymous = client.get(reverse("admin:login"))
    assert anonymous.status_code == 200
    assert anonymous["Content-Security-Policy"] == ADMIN_CONTENT_SECURITY_POLICY
    assert client.get(reverse("admin:index"))["Content-Security-Policy"] == (
        ADMIN_CONTENT_SECURITY_POLICY
    )  # the redirect to the login page too
    client.force_login(factories.StaffFactory())
    for kind, url in admin_pages(order).items():
        response = client.get(url)
        assert response.status_code in (200, 302, 404), kind
        assert response["Content-Security-Policy"] == ADMIN_CONTENT_SECURITY_POLICY, kind


def test_admin_pages_carry_no_inline_script(client, db):
    order = factories.paid_order_with_files(lines=1)
    factories.EventFactory(grant=order.grants.first())
    client.force_login(factories.StaffFactory())
    for kind, url in admin_pages(order).items():
        if kind == "javascript catalogue":
            continue
        html = client.get(url).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, (kind, tag)
        assert not re.search(r"\son[a-z]+=", html), kind  # no inline event handler


def test_the_docs_page_loads_its_init_script_from_its_own_url_under_the_docs_policy(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DOCS_CONTENT_SECURITY_POLICY
    html = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert '<script src="/api/docs/?script="></script>' in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()
    assert script["Content-Security-Policy"] == DOCS_CONTENT_SECURITY_POLICY
    assert "no-store" in script["Cache-Control"]  # it holds a CSRF token


def test_browsable_api_pages_answer_with_their_policy_and_json_keeps_its_headers(client, db):
    client.force_login(factories.StaffFactory())
    page = client.get("/api/v1/products", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert page["Content-Security-Policy"] == BROWSABLE_API_CONTENT_SECURITY_POLICY
    for tag in re.findall(r"<script\b[^>]*>", page.content.decode()):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    answer = client.get("/api/v1/products", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200
    assert "Content-Security-Policy" not in answer


def test_a_page_that_sets_its_own_policy_keeps_it(client, db):
    # The buyer pages' policy (set by page_headers) is not replaced by the middleware.
    assert client.get("/")["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert client.get(reverse("accounts:login"))["Content-Security-Policy"] == (
        CONTENT_SECURITY_POLICY
    )


def test_on_s3_the_admin_may_send_direct_uploads_to_the_bucket_and_nowhere_else(client, s3, db):
    client.force_login(factories.StaffFactory())
    url = storage.direct_upload_instructions(
        key="x", byte_size=1, content_type="text/plain", expires_in=60, local_url=""
    )["upload_url"]
    origin = re.match(r"https?://[^/]+", url).group(0)
    policy = client.get(reverse("admin:downloads_media_add"))["Content-Security-Policy"]
    assert directives(policy)["connect-src"] == ["'self'", origin]
    assert {k: v for k, v in directives(policy).items() if k != "connect-src"} == {
        k: v for k, v in directives(ADMIN_CONTENT_SECURITY_POLICY).items() if k != "connect-src"
    }


# --- In Chromium: the pages work and the browser reports no violation --------------------

# Collects every violation the page reports, from before its first script runs.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
});
"""


@pytest.fixture
def watched(page):
    """The page, with CSP violations and console errors collected as it loads pages."""
    errors = []
    page.add_init_script(WATCH_VIOLATIONS)
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    return page


def no_violations(page):
    violations = page.evaluate("window.__violations")
    assert violations == [], violations
    assert [e for e in page.errors if "Content Security Policy" in e] == [], page.errors


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_admin_works_in_chromium_with_no_policy_violation(live_server, watched):
    from playwright.sync_api import expect

    page = watched
    order = factories.paid_order_with_files(lines=2)
    order.total = 4900
    order.save(update_fields=["total"])
    factories.EventFactory(grant=order.grants.first())
    staff = factories.StaffFactory()
    admin = live_server.url + "/admin/"

    # The login page (the index redirects there), under the admin's policy.
    assert page.goto(admin).headers["content-security-policy"] == ADMIN_CONTENT_SECURITY_POLICY
    page.get_by_label("Email address").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # The index with its dashboard: the SVG charts render.
    expect(page.get_by_text("At a glance: the last 30 days")).to_be_visible()
    expect(page.locator('svg.downloads-chart rect.bar[data-count="1"]')).to_be_visible()
    revenue = page.locator("figure.revenue svg.revenue-chart rect.bar")
    expect(revenue).to_have_count(30)
    expect(page.locator('svg.revenue-chart rect.bar:not([data-amount="0"])')).to_be_visible()
    # Styled by the admin's stylesheet (allowed by the policy): not SVG's default black.
    fill = revenue.first.evaluate("bar => getComputedStyle(bar).fill")
    assert fill not in ("", "rgb(0, 0, 0)"), fill
    no_violations(page)

    # A change form: its scripts run (the inline formsets' "Add another" link is made by
    # Django's inlines.js).
    response = page.goto(f"{admin}downloads/order/{order.pk}/change/")
    assert response.headers["content-security-policy"] == ADMIN_CONTENT_SECURITY_POLICY
    expect(page.locator(".field-status")).to_contain_text("Paid")
    no_violations(page)
    page.goto(f"{admin}downloads/product/add/")
    page.get_by_role("button", name="Add another Download").click()
    expect(page.locator("#downloads-0")).to_be_visible()
    no_violations(page)

    # A form with the admin's richest widgets: the calendar and clock shortcuts
    # (DateTimeShortcuts.js) and select2's autocomplete, which fetches from the admin.
    page.goto(f"{admin}downloads/downloadgrant/add/")
    page.locator(".field-expires_at .date-icon").first.click()
    expect(page.locator(".calendarbox").first).to_be_visible()
    page.locator(".calendarbox .calendar-cancel a").first.click()
    page.locator(".field-order .select2-selection").first.click()
    page.locator(".select2-container--open .select2-search__field").fill(str(order.number))
    expect(page.locator(".select2-results__option").first).to_contain_text(str(order.number))
    no_violations(page)

    # A changelist with actions (actions.js) and one without (Django's inline <style>).
    page.goto(f"{admin}downloads/order/")
    page.locator("#action-toggle").check()
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    no_violations(page)
    page.goto(f"{admin}downloads/downloadevent/")
    expect(page.locator("#result_list")).to_be_visible()
    no_violations(page)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_api_docs_render_every_operation_in_chromium_with_no_policy_violation(
    live_server, watched
):
    from playwright.sync_api import expect

    page = watched
    response = page.goto(live_server.url + "/api/docs/")
    assert response.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
    expect(page.locator(".opblock").first).to_be_visible()
    operations = page.locator(".opblock").count()
    assert operations >= 35
    # An operation opens (Swagger UI's own scripts at work) and shows its parameters.
    page.locator(".opblock-summary", has_text="/api/v1/products").first.click()
    opened = page.locator(".opblock.is-open").first
    expect(opened.locator(".parameters-container")).to_be_visible()
    # "Try it out" calls the API from the page (connect-src): no key given, so a 401.
    opened.get_by_role("button", name="Try it out").click()
    opened.get_by_role("button", name="Execute").click()
    expect(opened.locator(".live-responses-table td.response-col_status").last).to_contain_text(
        "401"
    )
    no_violations(page)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_browsable_api_works_in_chromium_with_no_policy_violation(live_server, watched):
    from playwright.sync_api import expect

    page = watched
    staff = factories.StaffFactory()
    factories.ProductFactory(name="Browsable product")
    page.goto(live_server.url + "/admin/login/")
    page.get_by_label("Email address").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    response = page.goto(live_server.url + "/api/v1/products")
    assert response.headers["content-security-policy"] == BROWSABLE_API_CONTENT_SECURITY_POLICY
    expect(page.locator(".response-info")).to_contain_text("Browsable product")
    no_violations(page)
