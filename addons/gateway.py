"""The school web gateway as a mitmproxy script: `mitmdump -s addons/gateway.py`.

`gateway.proxy.parts` builds the gateway's parts (the gateway's own Master, `gateway proxy`, runs the same ones);
in mitmdump, `LeanProxy` first takes out the built-in addons that Master never loads.
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.proxy.lean_proxy import LeanProxy  # noqa: E402
from gateway.proxy.parts import gateway_addons  # noqa: E402

addons = [LeanProxy(), *gateway_addons()]
