"""Takes out mitmproxy's built-in addons that rewrite, replay or record traffic, which a school gateway never uses.

Two reasons. They run after the gateway has decided a request, so map_remote, modify_headers or a replayed response
could send it somewhere other than where it was decided, or answer it from a recording; sticky cookies and auth would
hand one pupil's session to another; saving flows to a file would keep what the access log's retention rules out.
And each of them is called on every request even when it is off (map_local's hook alone costs as much as a
decision), so without them HTTPS through the gateway costs no more than through bare mitmdump. Onboarding
(http://mitm.it, where devices fetch the CA certificate) stays.

Their options stay declared (mitmproxy made them), but setting one is refused, so nobody believes it works.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, exceptions

log = logging.getLogger(__name__)

# Built-in addon name -> the options that would turn it on.
UNUSED: dict[str, tuple[str, ...]] = {
    "maplocal": ("map_local",),
    "mapremote": ("map_remote",),
    "modifybody": ("modify_body",),
    "modifyheaders": ("modify_headers",),
    "anticache": ("anticache",),
    "anticomp": ("anticomp",),
    "stickyauth": ("stickyauth",),
    "stickycookie": ("stickycookie",),
    "serverplayback": ("server_replay",),
    "savehar": ("hardump",),
    "save": ("save_stream_file",),
    "blocklist": ("block_list",),
}


class LeanProxy:
    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        removed = []
        for name in UNUSED:
            addon = ctx.master.addons.get(name)
            if addon is not None:
                ctx.master.addons.remove(addon)
                removed.append(name)
        log.debug("built-in addons taken out: %s", ", ".join(removed))

    def configure(self, updated: set[str]) -> None:
        for name, options in UNUSED.items():
            for option in options:
                if option in updated and option in ctx.options and ctx.options.has_changed(option):
                    raise exceptions.OptionsError(
                        f"{option}: the school web gateway does not use mitmproxy's {name} (it would change or "
                        "record traffic after the gateway has decided it)"
                    )
