"""Orders in the back office: creating one through `order_create` (channel "admin", the
catalogue's prices unless a line names its own), the API's actions (mark paid, resend the
email, refund orders or lines, attach and detach files, cancel), every amount shown
formatted in the order's currency by `downloads.money`, and the order's licence keys.

Every change goes through `downloads.services.orders`; an order is never edited or deleted
here (it is a record of a sale and the download log hangs on it), only acted on. Its page
offers the buttons its state allows (`order_actions`); cancel, refund and detach are red and
confirm first (the refund form starts with no line ticked).
"""

from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, prefetch_related_objects
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from downloads import money, selectors
from downloads.emails import order_page_url
from downloads.errors import ServiceError
from downloads.models import (
    ChannelEvent,
    Download,
    DownloadGrant,
    LicenseKey,
    Order,
    OrderLine,
    Product,
    Variant,
)
from downloads.services.orders import (
    LineInput,
    order_actions,
    order_attach_downloads,
    order_cancel,
    order_create,
    order_detach_downloads,
    order_pay,
    order_refund,
    order_send_email,
)

from .grants import GrantColumnsMixin
from .licences import LicenseKeyColumnsMixin
from .mixins import (
    LIST_PER_PAGE,
    ObjectActionsMixin,
    StripNulSearchMixin,
    ViewOnlyChangeMixin,
    ViewOnlyInlineMixin,
    action_form_response,
    admin_url,
    confirmation,
    error_field,
    plural,
    related_count,
    run_each,
)

# The request being rendered, for absolute buyer links in list and read-only cells (which
# receive only the object). A ContextVar: admin instances are shared between threads.
_current_request: ContextVar = ContextVar("downloads_admin_request", default=None)


class OrderLineInline(ViewOnlyInlineMixin, admin.TabularInline):
    """Lines are snapshots taken when the order was placed: shown, never edited here."""

    model = OrderLine
    fields = [
        "name",
        "variant_name",
        "sku",
        "unit_price",
        "quantity",
        "line_total",
        "refunded_quantity",
        "refunded_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # The amounts are in the order's currency: read with the lines, not once per line.
        return super().get_queryset(request).select_related("order")

    @admin.display(description="unit price")
    def unit_price(self, obj):
        return money.format_money(obj.price, obj.order.currency)

    @admin.display(description="total")
    def line_total(self, obj):
        return money.format_money(obj.total, obj.order.currency)


class GrantInline(GrantColumnsMixin, ViewOnlyInlineMixin, admin.TabularInline):
    model = DownloadGrant
    fields = [
        "file",
        "line",
        "count",
        "expires_at",
        "state",
        "stamping",
        "last_downloaded_at",
        "edit",
    ]
    readonly_fields = fields
    verbose_name = "download grant"

    def get_queryset(self, request):
        # `stamping`: each grant's stamped copy in the grants' own statement; the order for
        # each row's title (DownloadGrant.__str__), which the inline formset does not fill.
        return selectors.grants_with_stamp_state(
            super().get_queryset(request).select_related("download__media", "line", "order")
        )

    @admin.display(description="")
    def edit(self, obj):
        return format_html('<a href="{}">Manage</a>', admin_url(obj))


class LicenseKeyInline(LicenseKeyColumnsMixin, ViewOnlyInlineMixin, admin.TabularInline):
    """The order's licence keys, line by line and unit by unit, each linked to its page."""

    model = LicenseKey
    fk_name = "order"
    fields = ["key_link", "item", "status_badge", "activations", "expires"]
    readonly_fields = fields
    verbose_name = "licence key"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("line")
            .order_by("line__position", "line_id", "unit")
        )


class OrderLineForm(forms.Form):
    """One line of a new order: a product, or a variant (which names its product)."""

    product = forms.ModelChoiceField(
        queryset=Product.objects.all(),
        required=False,
        widget=AutocompleteSelect(OrderLine._meta.get_field("product"), admin.site),
    )
    variant = forms.ModelChoiceField(
        queryset=Variant.objects.select_related("product"),
        required=False,
        widget=AutocompleteSelect(OrderLine._meta.get_field("variant"), admin.site),
    )
    quantity = forms.IntegerField(initial=1)
    price = forms.IntegerField(
        required=False,
        min_value=0,
        label="Unit price",
        help_text="In minor units; empty: the catalogue's price.",
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("product") and not cleaned.get("variant"):
            raise forms.ValidationError("Choose a product or a variant.")
        return cleaned

    def line_input(self) -> LineInput:
        variant = self.cleaned_data.get("variant")
        product = self.cleaned_data.get("product") or variant.product
        return LineInput(
            product=product,
            variant=variant,
            quantity=self.cleaned_data["quantity"],
            price=self.cleaned_data.get("price"),
        )


OrderLineFormSet = forms.formset_factory(
    OrderLineForm, extra=0, min_num=1, validate_min=True, max_num=100, validate_max=True
)


class OrderAddForm(forms.Form):
    email = forms.EmailField(help_text="The buyer's email: the order email goes there.")
    number = forms.IntegerField(
        required=False, help_text="Empty: the next number in sequence.", min_value=1
    )
    status = forms.ChoiceField(
        choices=[(Order.Status.PENDING, "Pending"), (Order.Status.PAID, "Paid")],
        initial=Order.Status.PENDING,
        help_text="Paid issues the downloads at once.",
    )
    send_email = forms.BooleanField(
        required=False, initial=True, label="Send the order email when paid"
    )
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.all(),
        required=False,
        label="Extra files",
        help_text="Files for this order only, beyond those of its products.",
        widget=AutocompleteSelectMultiple(Order._meta.get_field("downloads"), admin.site),
    )


class RefundForm(forms.Form):
    """The lines to refund, none ticked: the merchant picks each (a default of every line
    would refund the whole order with one click)."""

    lines = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        label="Lines to refund",
        help_text="Tick each line to refund; their downloads are revoked. Ticking every line "
        "of an order refunds the whole order (its attached files too).",
        error_messages={"required": "Tick at least one line to refund."},
    )

    def __init__(self, *args, orders, **kwargs):
        super().__init__(*args, **kwargs)
        self.orders = orders
        self.fields["lines"].choices = [
            (
                f"Order #{order.number} ({order.email}, {order.get_status_display().lower()})",
                [
                    (str(line.pk), self.line_label(line, order))
                    for line in order.lines.all()
                    if line.refunded_at is None
                ],
            )
            for order in orders
        ]

    @staticmethod
    def line_label(line: OrderLine, order: Order) -> str:
        name = f"{line} {line.variant_name}".strip()
        return f"{name}, {money.format_money(line.total, order.currency)}"


class AttachForm(forms.Form):
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.all(),
        widget=AutocompleteSelectMultiple(Order._meta.get_field("downloads"), admin.site),
        help_text="On a paid order the buyer can download them at once.",
    )


class DetachForm(forms.Form):
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Their grants on these orders are revoked; the download log is kept.",
    )

    def __init__(self, *args, orders, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["downloads"].queryset = (
            Download.objects.filter(attached_orders__in=orders).select_related("media").distinct()
        )


@admin.register(Order)
class OrderAdmin(ViewOnlyChangeMixin, ObjectActionsMixin, StripNulSearchMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "email",
        "status_display",
        "channel",
        "total_display",
        "line_count",
        "placed_at",
        "paid_at",
        "email_sent_at",
        "buyer_page",
    ]
    list_display_links = ["__str__"]
    list_filter = ["status", "channel", "placed_at"]
    search_fields = ["=number", "email", "=external_id", "=payment_id"]
    date_hierarchy = "placed_at"
    list_per_page = LIST_PER_PAGE
    fieldsets = [
        (None, {"fields": ["number", "email", "customer", "status", "buyer_page"]}),
        (
            "Sale",
            {
                "fields": [
                    "channel",
                    "external_id",
                    "subtotal_display",
                    "tax_display",
                    "total_display",
                    "refunded_display",
                    "payment_method",
                    "payment_id",
                    "channel_events",
                ]
            },
        ),
        (
            "Dates",
            {
                "fields": [
                    "placed_at",
                    "paid_at",
                    "refunded_at",
                    "disputed_at",
                    "email_sent_at",
                ]
            },
        ),
        ("Extra files", {"fields": ["attached"]}),
    ]
    readonly_fields = [
        "number",
        "email",
        "customer",
        "status",
        "buyer_page",
        "channel",
        "external_id",
        "subtotal_display",
        "tax_display",
        "total_display",
        "refunded_display",
        "payment_method",
        "payment_id",
        "channel_events",
        "placed_at",
        "paid_at",
        "refunded_at",
        "disputed_at",
        "email_sent_at",
        "attached",
    ]
    inlines = [OrderLineInline, GrantInline, LicenseKeyInline]
    actions = ["mark_paid", "send_email", "refund", "attach", "detach", "cancel"]
    object_actions = ("mark_paid", "send_email", "refund", "attach", "detach", "cancel")
    object_action_labels = {
        "mark_paid": "Mark paid",
        "send_email": "Resend email",
        "refund": "Refund…",
        "attach": "Attach files…",
        "detach": "Detach files…",
        "cancel": "Cancel order…",
    }
    destructive_actions = frozenset({"refund", "detach", "cancel"})
    # order_actions' verbs, by the action that runs each.
    action_verbs = {
        "mark_paid": "pay",
        "send_email": "send_email",
        "refund": "refund",
        "attach": "attach",
        "detach": "detach",
        "cancel": "cancel",
    }

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("customer")
            .annotate(_lines=related_count(OrderLine, "order"))
        )

    def get_object(self, request, object_id, from_field=None):
        # The attached files, read once for the page's field and order_actions (detach).
        order = super().get_object(request, object_id, from_field)
        if order is not None:
            prefetch_related_objects(
                [order], Prefetch("downloads", queryset=Download.objects.select_related("media"))
            )
        return order

    def get_inline_instances(self, request, obj=None):
        # The licence keys' section only on an order that has keys (one EXISTS).
        inlines = super().get_inline_instances(request, obj)
        if obj is None or not obj.license_keys.exists():
            inlines = [inline for inline in inlines if not isinstance(inline, LicenseKeyInline)]
        return inlines

    def has_delete_permission(self, request, obj=None):
        # Orders are records of sales and the download log hangs on them: refund or cancel.
        return False

    def get_object_actions(self, request, obj):
        allowed = order_actions(order=obj)
        return frozenset(name for name, verb in self.action_verbs.items() if verb in allowed)

    @admin.display(description="lines", ordering="_lines")
    def line_count(self, obj):
        return obj._lines

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        if obj.disputed_at is None:
            return obj.get_status_display()
        return format_html(
            '{} <strong class="order-disputed">disputed</strong>', obj.get_status_display()
        )

    @admin.display(description="subtotal")
    def subtotal_display(self, obj):
        return money.format_money(obj.subtotal, obj.currency)

    @admin.display(description="tax")
    def tax_display(self, obj):
        return money.format_money(obj.tax, obj.currency)

    @admin.display(description="total", ordering="total")
    def total_display(self, obj):
        return money.format_money(obj.total, obj.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj):
        return money.format_money(obj.refunded_total, obj.currency)

    @admin.display(description="channel events")
    def channel_events(self, obj):
        events = ChannelEvent.objects.filter(order=obj).order_by("received_at")
        if not events:
            return "None"
        return format_html_join(
            ", ",
            '<a href="{}">{} ({})</a>',
            ((admin_url(event), event.type, event.get_status_display()) for event in events),
        )

    @admin.display(description="buyer's page")
    def buyer_page(self, obj):
        return format_html(
            '<a href="{}" target="_blank" rel="noopener" class="buyer-page">Open ↗</a>',
            order_page_url(obj, _current_request.get()),
        )

    @admin.display(description="attached files")
    def attached(self, obj):
        downloads = obj.downloads.all()  # prefetched with their media (get_object)
        if not downloads:
            return "None"
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((admin_url(d), d.display_name) for d in downloads)
        )

    def _rendered_with_request(self, request, view, *args):
        token = _current_request.set(request)
        try:
            response = view(request, *args)
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _current_request.reset(token)

    def changelist_view(self, request, extra_context=None):
        return self._rendered_with_request(request, super().changelist_view, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._rendered_with_request(
            request, super().change_view, object_id, form_url, extra_context
        )

    # Creating an order: the dedicated add view below, through order_create.

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = OrderAddForm(request.POST)
            lines = OrderLineFormSet(request.POST, prefix="lines")
            if form.is_valid() and lines.is_valid():
                order = self._create_order(request, form, lines)
                if order is not None:
                    self.log_addition(request, order, [{"added": {}}])
                    self.message_user(
                        request, f"Order {order} was created for {order.email}.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(admin_url(order))
        else:
            form = OrderAddForm()
            lines = OrderLineFormSet(prefix="lines")
        context = {
            **self.admin_site.each_context(request),
            "title": "Add order",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
            "lines": lines,
            "media": self.media
            + form.media
            + lines.media
            # inlines.js needs django.jQuery: list the order so Media merging keeps it.
            + forms.Media(
                js=[
                    "admin/js/vendor/jquery/jquery.js",
                    "admin/js/jquery.init.js",
                    "admin/js/inlines.js",
                ]
            ),
            "errors": bool(form.errors or lines.total_error_count()),
            "currency": money.store_currency(),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/downloads/order/add_form.html", context)

    def _create_order(self, request, form, lines):
        data = form.cleaned_data
        try:
            return order_create(
                channel=Order.Channel.ADMIN,
                email=data["email"],
                number=data["number"],
                status=data["status"],
                send_email=data["send_email"],
                downloads=data["downloads"],
                lines=[line.line_input() for line in lines.forms if line.cleaned_data],
            )
        except ServiceError as exc:
            form.add_error(error_field(form, exc), exc.message)
            return None

    # Actions: each through a service, reporting how many orders changed.

    def _each(self, request, queryset, service, done: str):
        run_each(self, request, queryset, service, noun="order", done=done, label="Order {}".format)

    @admin.action(permissions=["change"], description="Mark paid (issues the downloads)")
    def mark_paid(self, request, queryset):
        self._each(request, queryset, lambda order: order_pay(order=order), "Marked {} paid.")

    @admin.action(permissions=["change"], description="Resend the order email")
    def send_email(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: order_send_email(order=order, request=request),
            "Sent the order email for {}.",
        )

    @admin.action(permissions=["change"], description="Cancel (pending orders)…")
    def cancel(self, request, queryset):
        page = confirmation(
            self,
            request,
            queryset,
            action="cancel",
            title="Cancel orders",
            intro="A cancelled order can no longer be paid; it stays listed with its history. "
            "Only pending orders are cancelled (refund a paid one).",
            submit="Yes, cancel",
        )
        if page is not None:
            return page
        self._each(request, queryset, lambda order: order_cancel(order=order), "Cancelled {}.")
        return None

    @admin.action(permissions=["change"], description="Refund orders or lines…")
    def refund(self, request, queryset):
        orders = list(queryset.prefetch_related("lines"))
        form = RefundForm(request.POST if "apply" in request.POST else None, orders=orders)
        if form.is_bound and form.is_valid():
            chosen = set(form.cleaned_data["lines"])
            refunded_orders = refunded_lines = 0
            for order in orders:
                picked = {str(line.pk) for line in order.lines.all()} & chosen
                if not picked:
                    continue
                # The service refunds the whole order when its last open line is refunded.
                try:
                    refunded = order_refund(order=order, line_ids=picked)
                except ServiceError as exc:
                    self.message_user(request, f"Order {order}: {exc.message}", messages.ERROR)
                    continue
                if refunded.status == Order.Status.REFUNDED:
                    refunded_orders += 1
                else:
                    refunded_lines += len(picked)
            parts = []
            if refunded_orders:
                parts.append(plural(refunded_orders, "order"))
            if refunded_lines:
                parts.append(plural(refunded_lines, "line"))
            if parts:
                self.message_user(
                    request,
                    f"Refunded {' and '.join(parts)}; their downloads are revoked.",
                    messages.SUCCESS,
                )
            return None
        return action_form_response(
            self,
            request,
            queryset,
            action="refund",
            title="Refund",
            intro="Refunding revokes the downloads of the refunded lines.",
            form=form,
            submit="Refund",
            objects=orders,
            destructive=True,
        )

    def _change_downloads(
        self,
        request,
        queryset,
        form,
        service,
        *,
        action,
        title,
        submit,
        done,
        objects=None,
        destructive=False,
    ):
        """Attach or detach: the form picks the downloads, then `service` runs on each order;
        `done` names them ("Attached {} to {{}}.")."""
        if form.is_bound and form.is_valid():
            downloads = list(form.cleaned_data["downloads"])
            self._each(
                request,
                queryset if objects is None else objects,
                lambda order: service(order=order, downloads=downloads),
                done.format(plural(len(downloads), "download")),
            )
            return None
        return action_form_response(
            self,
            request,
            queryset,
            action=action,
            title=title,
            form=form,
            submit=submit,
            objects=objects,
            destructive=destructive,
        )

    @admin.action(permissions=["change"], description="Attach downloads…")
    def attach(self, request, queryset):
        return self._change_downloads(
            request,
            queryset,
            AttachForm(request.POST if "apply" in request.POST else None),
            order_attach_downloads,
            action="attach",
            title="Attach downloads",
            submit="Attach",
            done="Attached {} to {{}}.",
        )

    @admin.action(permissions=["change"], description="Detach downloads…")
    def detach(self, request, queryset):
        orders = list(queryset)
        return self._change_downloads(
            request,
            queryset,
            DetachForm(request.POST if "apply" in request.POST else None, orders=orders),
            order_detach_downloads,
            action="detach",
            title="Detach downloads",
            submit="Detach",
            done="Detached {} from {{}}.",
            objects=orders,
            destructive=True,
        )
