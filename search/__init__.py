"""Hyperparameter search for image classifiers: the service (CLI, workers, trainer, data).

Our other top-level packages have the names every ML project uses for its own files (models,
spaces, registry). `python -m` puts the working directory first on the path, so a user's
models.py there would be imported in place of ours; a finder placed first on the import
system resolves those three names to the packages installed beside this one, whatever the
working directory holds. The user's own modules (--space-module) still import from it.
"""

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

OUR_PACKAGES = ("models", "registry", "spaces")
INSTALLED_AT = str(Path(__file__).resolve().parent.parent)


class OurPackagesFirst(importlib.abc.MetaPathFinder):
    """Finds OUR_PACKAGES where this package is installed, before any other finder looks."""

    def find_spec(self, name, path=None, target=None):
        if name not in OUR_PACKAGES:
            return None
        return importlib.machinery.PathFinder.find_spec(name, [INSTALLED_AT])


def _install() -> None:
    if not any(isinstance(finder, OurPackagesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, OurPackagesFirst())
    for name in OUR_PACKAGES:  # imported before us, from somewhere else: say which file
        loaded = sys.modules.get(name)
        where = getattr(loaded, "__file__", None) or ""
        if loaded is not None and not where.startswith(INSTALLED_AT):
            sys.exit(
                f"cifar-search: error: '{name}' was already imported from {where}, not from "
                f"{INSTALLED_AT}; rename that file of yours or run from another folder"
            )


_install()
