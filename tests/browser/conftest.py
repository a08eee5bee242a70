"""The e2e fixtures (trustme CA and host certificates) for the browser tests."""
from tests.e2e.conftest import ca, certs  # noqa: F401
