"""The ASGI application Tether mounts (``[app] asgi = "djchat.asgi:application"``).

DEMO set-up at import: the SQLite database is migrated and two users exist (ann and bob, password
``demo-password``), so that one command starts the example. A real project runs ``manage.py migrate``.
"""

import os
import threading

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djchat.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.management import call_command  # noqa: E402


def _demo_database() -> None:
    os.makedirs(os.path.dirname(settings.DATABASES["default"]["NAME"]), exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth.models import User

    for name in ("ann", "bob"):
        if not User.objects.filter(username=name).exists():
            User.objects.create_user(name, password="demo-password")


def _in_a_thread(fn) -> None:
    # Tether imports the app inside its event loop, where Django refuses blocking ORM calls: the one-time
    # set-up runs in a thread of its own and its error, if any, is raised here.
    errors = []
    thread = threading.Thread(target=lambda: _capture(fn, errors))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _capture(fn, errors) -> None:
    try:
        fn()
    except Exception as exc:
        errors.append(exc)


_in_a_thread(_demo_database)
application = get_asgi_application()
