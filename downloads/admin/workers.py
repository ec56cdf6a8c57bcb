"""Workers in the back office: each `db_worker` that is running, or was killed, with its last
heartbeat and whether it is presumed dead (`services.workers.worker_dead_q`; a dead worker's
task runs again on another worker). Read-only: the rows belong to the workers. The tasks
themselves, with a recovered one READY again and one given up FAILED with its `WorkerLost`
error, are django-tasks-db's *Task results*.
"""

from django.conf import settings
from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper

from downloads.models import WorkerHeartbeat
from downloads.services.workers import worker_dead_q

from .mixins import LIST_PER_PAGE, RecordAdminMixin


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(RecordAdminMixin, admin.ModelAdmin):
    list_display = ["worker_id", "state", "host", "pid", "started_at", "beat_at"]
    search_fields = ["worker_id", "host"]
    list_per_page = LIST_PER_PAGE

    def get_queryset(self, request):
        dead = ExpressionWrapper(worker_dead_q(), output_field=BooleanField())
        return super().get_queryset(request).annotate(dead=dead)

    @admin.display(description="state", ordering="beat_at")
    def state(self, heartbeat) -> str:
        if heartbeat.dead:
            return f"dead (silent for over {settings.DOWNLOADS_WORKER_DEAD_AFTER:g} s)"
        return "alive"
