"""Media in the back office: stored files, uploaded through the form (small files) or
straight to storage (large ones, with a progress bar), and a staff-only preview.

Uploads go through `downloads.services.media` (it reads size, type and SHA-256 and stores the
file); a file that downloads use is not deleted (the service refuses). Either way of
uploading ends on the file's page with a message and the way on: *Use in a product*, the
download form with the file picked.
"""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.http.request import RawPostDataException
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from downloads import storage
from downloads.api.exceptions import service_error_status
from downloads.emails import site_url
from downloads.errors import ServiceError
from downloads.models import Download, Media, MediaUpload
from downloads.services.media import (
    media_create,
    media_delete,
    media_upload_complete,
    media_upload_start,
)

from .mixins import (
    LIST_PER_PAGE,
    ServiceDeleteMixin,
    ServiceFormMixin,
    StripNulSearchMixin,
    ViewOnlyChangeMixin,
    admin_url,
    duration_text,
    plural,
    related_count,
)

# Files at least this large skip the app and go straight to storage (S3, or the app's own
# upload endpoint on local storage) through the direct-upload flow, with a progress bar.
DIRECT_UPLOAD_MIN_BYTES = 4 * 1024 * 1024


def use_in_product_url(media: Media) -> str:
    """The form that adds a download (a file on a product) with this media picked."""
    return f"{reverse('admin:downloads_download_add')}?{urlencode({'media': media.pk})}"


def preview_help() -> str:
    """How the preview link delivers the file, with the presigned URL's lifetime on S3 read
    from DOWNLOADS_URL_TTL now (so the words follow the setting)."""
    if storage.is_s3():
        ttl = duration_text(settings.DOWNLOADS_URL_TTL)
        return f"Staff only; never a public link: a presigned URL valid for {ttl}."
    return "Staff only; never a public link."


class MediaUploadForm(forms.ModelForm):
    upload = forms.FileField(label="File")

    class Meta:
        model = Media
        fields = ["upload"]


@admin.register(Media)
class MediaAdmin(
    ViewOnlyChangeMixin,
    ServiceFormMixin,
    ServiceDeleteMixin,
    StripNulSearchMixin,
    admin.ModelAdmin,
):
    list_display = ["filename", "size", "content_type", "used_by", "created_at"]
    search_fields = ["filename", "sha256"]
    list_per_page = LIST_PER_PAGE
    readonly_fields = [
        "filename",
        "size",
        "content_type",
        "sha256_display",
        "storage",
        "key",
        "preview",
        "usage",
        "created_at",
    ]
    fieldsets = [(None, {"fields": readonly_fields})]
    add_fieldsets = [(None, {"fields": ["upload"]})]
    actions = ["delete_selected"]

    def service_delete(self, obj):
        media_delete(media=obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used_by=related_count(Download, "media"))

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MediaUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def service_create(self, request, form):
        # The service reads the file once: size, type and SHA-256, then stores it.
        return media_create(file=form.cleaned_data["upload"])

    @admin.display(description="size", ordering="byte_size")
    def size(self, obj):
        if obj.byte_size < 1024:
            return filesizeformat(obj.byte_size)
        return format_html(
            '{} <span class="quiet">({} bytes)</span>',
            filesizeformat(obj.byte_size),
            f"{obj.byte_size:,}",
        )

    @admin.display(description="SHA-256")
    def sha256_display(self, obj):
        return format_html("<code>{}</code>", obj.sha256)

    @admin.display(description="used by", ordering="_used_by")
    def used_by(self, obj):
        return plural(obj._used_by, "download")

    @admin.display(description="storage")
    def storage(self, obj):
        return storage.storage_kind()

    @admin.display(description="key")
    def key(self, obj):
        return obj.key

    @admin.display(description="preview")
    def preview(self, obj):
        url = reverse("admin:downloads_media_preview", args=[quote(obj.pk)])
        return format_html(
            '<a href="{}" class="media-preview" target="_blank" rel="noopener">Download a copy</a> '
            '<span class="help">{}</span>',
            url,
            preview_help(),
        )

    @admin.display(description="used by")
    def usage(self, obj):
        downloads = obj.downloads.select_related("product", "variant").order_by("created_at")
        rows = [
            (
                admin_url(download),
                download.display_name,
                f" on {download.product.name}" if download.product else " (order attachments)",
                f" – {download.variant.name}" if download.variant else "",
                " (archived)" if download.archived else "",
            )
            for download in downloads
        ]
        if not rows:
            return format_html(
                'No download uses this file. <a href="{}" class="use-in-product">Use it in a '
                "product</a>.",
                use_in_product_url(obj),
            )
        return format_html(
            "<ul class='media-usage'>{}</ul>",
            format_html_join("", '<li><a href="{}">{}</a>{}{}{}</li>', rows),
        )

    # The upload page: small files post through the form; large ones take the direct flow.

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="downloads_media_preview",
            ),
            path(
                "upload/start/",
                self.admin_site.admin_view(self.upload_start_view),
                name="downloads_media_upload_start",
            ),
            path(
                "upload/<uuid:upload_id>/complete/",
                self.admin_site.admin_view(self.upload_complete_view),
                name="downloads_media_upload_complete",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "direct_upload": {
                "start_url": reverse("admin:downloads_media_upload_start"),
                "min_bytes": DIRECT_UPLOAD_MIN_BYTES,
                "max_bytes": settings.DOWNLOADS_MAX_UPLOAD_SIZE,
                "destination": storage.upload_destination(),
            },
        }
        return super().add_view(request, form_url, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add and self._may_add_downloads(request):
            context["use_in_product_url"] = use_in_product_url(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _may_add_downloads(self, request) -> bool:
        return request.user.has_perm("downloads.add_download")

    def _uploaded_message(self, request, media: Media) -> None:
        """Where a merchant goes after uploading: the file's page, told it worked, with the
        way on to a product."""
        if self._may_add_downloads(request):
            message = format_html(
                'The file “{}” was uploaded. <a href="{}">Use it in a product</a>.',
                media.filename,
                use_in_product_url(media),
            )
        else:
            message = format_html("The file “{}” was uploaded.", media.filename)
        self.message_user(request, message, messages.SUCCESS)

    def response_add(self, request, obj, post_url_continue=None):
        # A popup (the file picked from a download's form) and "Save and add another" keep
        # Django's answer; otherwise the new file's page, with the message.
        if IS_POPUP_VAR in request.POST or "_addanother" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self._uploaded_message(request, obj)
        return HttpResponseRedirect(admin_url(obj))

    def preview_view(self, request, object_id):
        """Staff only: the file delivered the way buyers get it (`storage.media_response`),
        without taking anyone's download."""
        media = self.get_object(request, unquote(object_id))
        if media is None or not self.has_view_permission(request, media):
            raise Http404
        try:
            response = storage.media_response(request, media)
        except storage.ServeError as exc:
            raise Http404("The stored file is missing.") from exc
        response["Cache-Control"] = "private, no-store"
        return response

    def _json_error(self, message: str, code: str, status: int = 400):
        return JsonResponse({"code": code, "message": message}, status=status)

    def _refused_by_service(self, exc: ServiceError):
        response = self._json_error(exc.message, exc.code, service_error_status(exc))
        if isinstance(exc, storage.StorageUnavailable):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def _upload_refused(self, request):
        """The upload endpoints answer POSTs of staff who may add media, nothing else."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        return None

    def upload_start_view(self, request):
        """JSON for the upload page's script: where and how to send the bytes."""
        if refused := self._upload_refused(request):
            return refused
        try:
            body = json.loads(request.body or b"{}")
            filename = str(body["filename"])
            byte_size = int(body["byte_size"])
            content_type = str(body.get("content_type") or "")
        except (ValueError, KeyError, TypeError):
            return self._json_error("Send filename, byte_size and content_type.", "invalid")
        try:
            upload, instructions = media_upload_start(
                filename=filename,
                byte_size=byte_size,
                content_type=content_type or None,
                site_url=site_url(request),
            )
        except ServiceError as exc:
            return self._refused_by_service(exc)
        return JsonResponse(
            {
                "id": str(upload.pk),
                **instructions,
                "complete_url": reverse("admin:downloads_media_upload_complete", args=[upload.pk]),
            }
        )

    def upload_complete_view(self, request, upload_id):
        """JSON: the stored file became a Media; where to go next."""
        if refused := self._upload_refused(request):
            return refused
        upload = MediaUpload.objects.filter(pk=upload_id).first()
        if upload is None:
            return self._json_error("No such upload.", "media_upload.not_found", 404)
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RawPostDataException):  # not the script's JSON: no popup
            body = {}
        try:
            media = media_upload_complete(upload=upload)
        except ServiceError as exc:
            return self._refused_by_service(exc)
        self.log_addition(request, media, [{"added": {}}])
        if not (isinstance(body, dict) and body.get("popup")):
            # Shown on the file's page, where the script goes next (a popup hands the file
            # to its opener instead and shows no page).
            self._uploaded_message(request, media)
        return JsonResponse(
            {
                "id": str(media.pk),
                "filename": media.filename,
                "byte_size": media.byte_size,
                "sha256": media.sha256,
                "change_url": admin_url(media),
            }
        )
