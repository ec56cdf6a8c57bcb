"""The baseline: the cheapest DRF view there is, served by the same process as the app."""

from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

BASELINE_PAYLOAD = {"object": "baseline", "ok": True}


class BaselineView(APIView):
    """A small constant JSON: the cost of Django + DRF + gunicorn with no work at all."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    def get(self, request):
        return Response(BASELINE_PAYLOAD)
