"""Auto-import every module of a package so that its @register decorators run."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, package_path) -> None:
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


def import_user_modules(names) -> None:
    """Import researchers' own modules (config key `plugins`), registering their components."""
    from .errors import ConfigError

    for name in names or []:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"Cannot import plugin module '{name}': {exc}. Put its folder on PYTHONPATH.") from exc
