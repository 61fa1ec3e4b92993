"""A one-file Django API: POST an image to /thumbnail, get back a PNG thumbnail made by ImageMagick.

    curl --data-binary @photo.png -H 'Content-Type: image/png' http://127.0.0.1:8000/thumbnail > thumb.png

Run: python3 server.py [addr:port]   (Django's development server, no reloader)
"""

import os
import subprocess
import sys

from django.conf import settings
from django.core.management import execute_from_command_line
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY=os.environ.get("SECRET_KEY", "example-only-not-secret"),
    DATA_UPLOAD_MAX_MEMORY_SIZE=20 * 1024 * 1024,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

SIZE = os.environ.get("THUMBNAIL_SIZE", "64x64")


@require_GET
def health(request):
    return HttpResponse("ok\n", content_type="text/plain")


@csrf_exempt
@require_POST
def thumbnail(request):
    upload = request.FILES.get("image")
    data = upload.read() if upload is not None else request.body
    if not data:
        return HttpResponseBadRequest("send an image as the request body or as the form field 'image'\n")
    # "-" reads the image from stdin; "png:-" writes a PNG to stdout. [0]: the first frame only.
    proc = subprocess.run(["convert", "-[0]", "-thumbnail", SIZE, "-strip", "png:-"],
                          input=data, capture_output=True, timeout=30)
    if proc.returncode != 0 or not proc.stdout:
        return HttpResponseBadRequest("not an image ImageMagick can read: "
                                      + proc.stderr.decode(errors="replace")[:200] + "\n")
    return HttpResponse(proc.stdout, content_type="image/png")


urlpatterns = [path("health", health), path("thumbnail", thumbnail)]

if __name__ == "__main__":
    address = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0:8000"
    execute_from_command_line([sys.argv[0], "runserver", "--noreload", address])
