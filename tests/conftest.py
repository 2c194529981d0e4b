"""Suite-wide fixtures."""

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Undo global structlog configuration a test made (the CLI configures logging, as an
    application should), so later tests that capture log events see every level."""
    yield
    structlog.reset_defaults()
