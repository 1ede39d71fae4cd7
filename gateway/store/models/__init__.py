"""The store's tables, one module per concern.

Importing this package imports every module in it, so each table is on `Base.metadata` for Alembic and
`create_all` without a list to keep in step.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
