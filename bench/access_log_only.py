"""The AccessLog addon alone, loaded after bench/gateway_without_access_log.py to measure its cost."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.proxy.access_log import AccessLog  # noqa: E402

addons = [AccessLog()]
