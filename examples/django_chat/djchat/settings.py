"""Settings of examples/django_chat: a DEMO (secret in the file, DEBUG on, SQLite under run/)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# DEMO secret: a real deployment reads it from the environment and never commits it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-secret-not-for-production")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "djchat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "djchat.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJCHAT_DB", str(BASE_DIR / "run" / "db.sqlite3")),
    }
}
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the process time zone from it (default America/Chicago): Tether's log too
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
