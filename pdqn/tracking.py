"""Experiment tracking hooks (Aim). Placeholder until the tracking issue lands."""

from pdqn.config import Config
from pdqn.runner import RunHooks


def make_hooks(config: Config) -> list[RunHooks]:
    """The trackers ``config.track`` asks for."""
    return []
