"""addons/gateway.py without the metrics' per-request work: the baseline for its cost in bench/throughput.py.

    .venv/bin/python bench/throughput.py --variant-script bench/gateway_without_metrics.py

prints `gateway/variant`: throughput with the metrics counting and timing every decision against without. The
`Metrics` part keeps only its options and endpoint (so the same `--set`s work), and the chain times no hook.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("gateway_addons", Path(__file__).resolve().parents[1] / "addons" / "gateway.py")
_module = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_module)  # type: ignore[union-attr]

from gateway.proxy.chain import AddonChain  # noqa: E402
from gateway.proxy.metrics import Metrics  # noqa: E402


class EndpointOnly:
    """The metrics part's options and server, none of its hooks."""

    def __init__(self, metrics: Metrics) -> None:
        self.load = metrics.load
        self.configure = metrics.configure
        self.done = metrics.done


def _without_metrics(addon: object) -> object:
    if not isinstance(addon, AddonChain):
        return addon
    parts = (EndpointOnly(part) if isinstance(part, Metrics) else part for part in addon.parts)
    return AddonChain(*parts, on_failure=addon.on_failure)


addons = [_without_metrics(addon) for addon in _module.addons]
