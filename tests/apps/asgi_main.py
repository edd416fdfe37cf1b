"""``uvicorn tests.apps.asgi_main:app`` for the tests that run a real ASGI server process
(tests/test_asgi_process.py): Tether alone, with the config the environment gives (``TETHER_*``).

``TETHER_TEST_BASICCONFIG=1``: the app configures logging itself (``logging.basicConfig`` at import), as
many apps do; Tether's records must then be printed by that configuration alone, once.
"""

from __future__ import annotations

import logging
import os

from tether.asgi import ASGIApp
from tether.router import Router

if os.environ.get("TETHER_TEST_BASICCONFIG"):
    logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(name)s: %(message)s")

app = ASGIApp(Router())
