"""Doctests that need an optional extra are not collected where it is missing (the tests skip themselves)."""

try:
    import optuna  # noqa: F401
except ImportError:
    collect_ignore = ["jaxdescent/_optuna.py"]
