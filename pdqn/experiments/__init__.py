"""Command-line entry points: ``python -m pdqn.experiments.<name>``."""
