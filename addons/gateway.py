"""The school web gateway as a mitmproxy script: `mitmdump -s addons/gateway.py`.

It only lists the addons; `gateway.proxy.parts` builds them (the gateway's own Master, `gateway proxy`, runs the
same parts).
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.proxy.parts import gateway_addons  # noqa: E402

addons = gateway_addons()
