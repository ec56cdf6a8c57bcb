"""What the back office's admins share: saving and deleting through services, change-page
buttons for actions, view-only change pages and inlines, and the helpers their actions
report with.

The admin holds no rule of its own: forms collect input, services decide. A `ServiceError`
raised while saving lands on the form field its `attribute` names (ServiceFormMixin); one
raised on delete becomes a message that offers archiving (ServiceDeleteMixin); the buttons on
change pages run the same actions as the changelist (ObjectActionsMixin), only those the
object's state allows, the destructive ones red and behind a confirmation page
(`confirmation`), which works without script.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import ngettext

from downloads.errors import ServiceError

LIST_PER_PAGE = 50


# --- Helpers ----------------------------------------------------------------------------------


def related_count(model, fk: str, **filters):
    """A correlated COUNT subquery: constant queries and no row multiplication across joins."""
    rows = (
        model.objects.filter(**{fk: OuterRef("pk")}, **filters)
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def admin_url(obj, view: str = "change") -> str:
    return reverse(admin_urlname(obj._meta, view), args=[quote(obj.pk)])


def bulk_change(model_admin, request, queryset, change, *, verb: str, noun: str, unchanged):
    """Run a bulk action's service on the selection and say how many rows it changed and
    how many were already so (`unchanged(n)`, a sentence). The selection is counted before
    the change: on a list filtered by state, the change moves rows out of the queryset."""
    selected = queryset.count()
    changed = change(queryset)
    text = f"{verb} {plural(changed, noun)}."
    if rest := selected - changed:
        text += f" {unchanged(rest)}"
    model_admin.message_user(request, text, messages.SUCCESS)
    return changed


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}s"


def duration_text(seconds: int) -> str:
    """A length of time in words, exact, in the largest unit that divides it: "1 minute",
    "90 seconds", "2 hours" (help texts that quote a setting in seconds)."""
    if seconds and seconds % 3600 == 0:
        hours = seconds // 3600
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    if seconds and seconds % 60 == 0:
        minutes = seconds // 60
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}


def error_field(form, error: ServiceError) -> str | None:
    """The form field a service's error is about, or None for the whole form."""
    return error.attribute if error.attribute in form.fields else None


def changed_fields(form, allowed) -> dict:
    """The fields a form changed, among those a service's update accepts."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


def run_each(modeladmin, request, queryset, service, *, noun: str, done, label=str) -> int:
    """Run `service(obj)` on each selected row; a ServiceError becomes an error message for
    that row (named by `label(obj)`), and `done` (formatted with "N <noun>s", or called with
    it once every row ran, to report what the rows became) reports how many went through."""
    changed = 0
    for obj in queryset:
        try:
            service(obj)
            changed += 1
        except ServiceError as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc.message}", messages.ERROR)
    if changed or not queryset:
        counted = plural(changed, noun)
        message = done(counted) if callable(done) else done.format(counted)
        modeladmin.message_user(request, message, messages.SUCCESS)
    return changed


def action_form_response(
    modeladmin,
    request,
    queryset,
    *,
    action,
    title,
    form,
    submit,
    objects=None,
    intro="",
    destructive=False,
):
    """An intermediate page for an action, in the admin's look, posting back to the same URL
    with the selection, so a changelist action and a change-page button share it. A
    destructive action's submit button is red, like Django's delete confirmation; *Cancel*
    goes back where the action started (the object's page for a change-page button)."""
    back = getattr(request, "object_action_from", None)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "intro": intro,
        "opts": modeladmin.opts,
        "app_label": modeladmin.opts.app_label,
        "form": form,
        "media": modeladmin.media + form.media,
        "objects": objects if objects is not None else list(queryset),
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "submit": submit,
        "destructive": destructive,
        "cancel_url": admin_url(back) if back is not None else None,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/downloads/action_form.html", context)


class _Confirm(forms.Form):
    """A confirmation page's form: nothing to fill in, the submit button is the answer."""


def confirmation(modeladmin, request, queryset, *, action, title, intro, submit, objects=None):
    """The confirmation page of a destructive action, or None once it was confirmed (the
    page posts back with `apply`): `if (page := confirmation(...)) is not None: return page`
    at the top of the action, so nothing changes on the first POST."""
    if "apply" in request.POST:
        return None
    return action_form_response(
        modeladmin,
        request,
        queryset,
        action=action,
        title=title,
        intro=intro,
        form=_Confirm(),
        submit=submit,
        objects=objects,
        destructive=True,
    )


# --- Mixins -----------------------------------------------------------------------------------


class StripNulSearchMixin:
    """PostgreSQL refuses a NUL byte in a query parameter (DataError); a search never needs
    one, so it is dropped before the query instead of answering 500."""

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))


class ViewOnlyChangeMixin:
    """Change pages are Django's view-only pages (every field read-only, no Save, a POST
    refused); changes go through actions, which need the change permission on the
    changelist."""

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)


class RecordAdminMixin:
    """A record kept as it was written (the download log, workers' heartbeats): listed and
    shown, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ViewOnlyInlineMixin:
    """Inline rows that are shown, never added, changed or deleted here (snapshots, logs,
    histories)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _with_service_error(form_class, error: ServiceError):
    """A subclass of form_class that shows `error` the way a validation error is shown."""

    class ServiceErrorForm(form_class):
        def clean(self):
            cleaned = super().clean()
            self.add_error(error_field(self, error), error.message)
            return cleaned

    ServiceErrorForm.__name__ = form_class.__name__
    return ServiceErrorForm


class ServiceFormMixin:
    """Saving goes through services: `service_create(request, form)` on add and
    `service_update(request, obj, form)` on change; inline formsets through save_formset
    (see ProductAdmin). The admin calls save_model only once the form and every inline are
    valid, so nothing is written for a page that comes back with errors.

    changeform_view runs in a transaction: when a service refuses, everything rolls back and
    the same POST is rendered again with the service's message on the field it names.
    """

    def service_create(self, request, form):
        raise NotImplementedError

    def service_update(self, request, obj, form):
        raise NotImplementedError

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            request._service_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        error = getattr(request, "_service_error", None)
        return _with_service_error(form, error) if error is not None else form

    def save_model(self, request, obj, form, change):
        if change:
            saved = self.service_update(request, obj, form)
        else:
            saved = self.service_create(request, form)
        # The service wrote the row; the admin's object (the inlines' parent, the history
        # entry, the redirect) becomes that row as stored.
        if saved is not None:
            obj.pk = saved.pk
            obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        # No many-to-many field is edited on these forms; inlines save through services.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def save_formset_through(formset, *, create, update, delete):
    """Save an inline formset row by row through services, recording what changed the way
    formset.save() does (the admin's history reads new/changed/deleted_objects)."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    deleted = set(map(id, formset.deleted_forms))
    for form in formset.initial_forms:
        if id(form) in deleted:
            delete(form.instance)
            formset.deleted_objects.append(form.instance)
        elif form.has_changed():
            formset.changed_objects.append((update(form.instance, form), form.changed_data))
    for form in formset.extra_forms:
        if form.has_changed() and id(form) not in deleted:
            formset.new_objects.append(create(form))


class ServiceDeleteMixin:
    """Deleting goes through a service (`service_delete`), which raises a ServiceError
    (`<entity>.in_use`) when orders still need the row.

    Django's own "protected objects" refusal is lifted so the service decides, and its
    message (which suggests archiving) is shown on the change page.
    """

    def service_delete(self, obj) -> None:
        """Delete obj through its service; raise ServiceError when it is in use."""
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        request._in_use = protected
        if protected:
            # Nothing will be deleted (the service refuses), so the permissions the
            # protected rows would need do not matter.
            perms_needed = set()
        return deleted, model_count, perms_needed, []

    def render_delete_form(self, request, context):
        context["in_use"] = getattr(request, "_in_use", [])
        return super().render_delete_form(request, context)

    def delete_model(self, request, obj):
        self.service_delete(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(
                reverse(admin_urlname(self.opts, "change"), args=[quote(unquote(object_id))])
            )

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request, queryset):
        """Django's confirmation page, then each row through the service, one by one (the
        rows in use are named, the others deleted)."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        deleted = 0
        for obj in queryset:
            display = str(obj)
            try:
                with transaction.atomic():
                    self.log_deletions(request, [obj])
                    self.service_delete(obj)
                deleted += 1
            except ServiceError as exc:
                self.message_user(request, f"{display}: {exc.message}", messages.ERROR)
        if deleted:
            noun = self.opts.verbose_name if deleted == 1 else self.opts.verbose_name_plural
            self.message_user(request, f"Deleted {deleted} {noun}.", messages.SUCCESS)
        return None


class ObjectActionsMixin:
    """Buttons on the change page that run changelist actions on that one object.

    The button POSTs to `<id>/run/<action>/`; an action with an intermediate form renders
    it, and the form posts back to the same URL. The user lands back on the change page.

    Only the actions `get_object_actions` allows for the object's state are shown, and only
    those run from this URL (a page left open while the state changed gets a message, not
    the action). Those in `destructive_actions` are red and confirm first (the action
    itself renders `confirmation` or a form page with a red submit).
    """

    object_actions: tuple[str, ...] = ()
    # Button labels, shorter than the changelist's action descriptions.
    object_action_labels: dict[str, str] = {}
    destructive_actions: frozenset[str] = frozenset()

    def get_urls(self):
        return [
            path(
                "<path:object_id>/run/<str:action>/",
                self.admin_site.admin_view(self.object_action_view),
                name=admin_urlname(self.opts, "run").removeprefix("admin:"),
            ),
            *super().get_urls(),
        ]

    def object_action_url(self, obj, action: str) -> str:
        return reverse(admin_urlname(self.opts, "run"), args=[quote(obj.pk), action])

    def object_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        actions = self.get_actions(request)
        if action not in self.object_actions or action not in actions:
            raise PermissionDenied
        if action not in self.get_object_actions(request, obj):
            label = self.object_action_labels.get(action, actions[action][2])
            self.message_user(
                request,
                f"{label.rstrip('…')}: not possible for this {self.opts.verbose_name} now.",
                messages.WARNING,
            )
            return HttpResponseRedirect(admin_url(obj))
        request.object_action_from = obj
        func = actions[action][0]
        response = func(self, request, self.get_queryset(request).filter(pk=obj.pk))
        return response or HttpResponseRedirect(admin_url(obj))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add:
            actions = self.get_actions(request)
            allowed = self.get_object_actions(request, obj)
            context["object_actions"] = [
                {
                    "name": name,
                    "label": self.object_action_labels.get(name, actions[name][2]),
                    "url": self.object_action_url(obj, name),
                    "destructive": name in self.destructive_actions,
                }
                for name in self.object_actions
                if name in actions and name in allowed
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_object_actions(self, request, obj) -> tuple[str, ...] | frozenset[str]:
        """The actions the object's state allows (every one unless overridden); the
        services still decide, this only keeps buttons that cannot work off the page."""
        return self.object_actions
