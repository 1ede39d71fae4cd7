"""addons/gateway.py without the AccessLog addon: the baseline for the access log's cost in bench/throughput.py.

    .venv/bin/python bench/throughput.py --variant-script bench/gateway_without_access_log.py

prints `gateway/variant`: throughput with the access log against without it, in one run.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("gateway_addons", Path(__file__).resolve().parents[1] / "addons" / "gateway.py")
_module = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_module)  # type: ignore[union-attr]

from gateway.proxy.access_log import AccessLog  # noqa: E402
from gateway.proxy.chain import AddonChain  # noqa: E402


def _without_access_log(addon: object) -> object:
    if not isinstance(addon, AddonChain):
        return addon
    return AddonChain(*(part for part in addon.parts if not isinstance(part, AccessLog)), on_failure=addon.on_failure)


addons = [_without_access_log(addon) for addon in _module.addons]
