"""A Kafka consumer worker that feeds the mediarithmics Tracking API: at least once, never lost."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mics-event-worker")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
