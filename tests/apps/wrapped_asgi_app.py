"""A FastAPI-style app wrapped in Tether's ``ASGIApp``, as a main.py for uvicorn has it: what ``tether start
--app`` must refuse (it is Tether itself), while the app it wraps is what ``--app`` takes."""

from tests.apps.asgi_app import app as api
from tether import Router
from tether.asgi import ASGIApp

app = ASGIApp(Router(), other_asgi_app=api)
