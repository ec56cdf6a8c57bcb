from django.urls import path

from .views import delivery

app_name = "downloads"

urlpatterns = [
    path("<str:token>/", delivery.download, name="download"),
]
