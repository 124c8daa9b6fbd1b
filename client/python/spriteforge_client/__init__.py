"""A small client for the spriteforge coordinator's HTTP API: submit manifests, watch
jobs with a progress bar, fetch their images. Needs only python3-requests."""

from .client import ApiError, Client
from .progress import ProgressBar

__all__ = ["ApiError", "Client", "ProgressBar"]
