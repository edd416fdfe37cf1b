"""The service manager's fixtures (a temp app folder, a tether instance driven through the real CLI), for the
admin UI's test with several workers."""

from tests.manager.conftest import app_folder, instance  # noqa: F401 - fixtures
