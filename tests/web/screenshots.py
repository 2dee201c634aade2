"""Write the README's screenshots of the phone page: ``python -m tests.web.screenshots``.

A phone-sized viewport (390 × 844), light and dark, in Debian's headless Chromium. The
page is served by the real relay; its running state (a caption, the status) is set in
the page so the picture shows what a wearer sees mid-walk without a server behind it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from mobile_bridge.web.relay import Relay, RelayOptions, serve
from tests.web.browser import chromium

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUNNING = """
document.getElementById('pairing').hidden = true;
document.getElementById('state').textContent = 'Running';
document.getElementById('caption').textContent = 'Door on your left, two steps ahead.';
document.getElementById('heard').textContent = 'You said: where is the door?';
document.getElementById('st-link').textContent = 'connected';
document.getElementById('st-frame').textContent = '180 ms';
document.getElementById('st-latency').textContent = '240 ms';
document.getElementById('st-motion').textContent = 'on';
for (const id of ['ask', 'quiet']) document.getElementById(id).disabled = false;
document.getElementById('start').textContent = 'Stop';
for (const b of document.querySelectorAll('[data-mode]'))
  b.setAttribute('aria-pressed', b.dataset.mode === 'blind' ? 'true' : 'false');
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as cfg:
        os.environ["XDG_CONFIG_HOME"] = cfg  # no pairing: nothing of the user's is shown
        relay = Relay(RelayOptions())
        async with serve(relay, "127.0.0.1", 0) as url, chromium(None, None) as browser:
            for scheme in ("light", "dark"):
                ctx = await browser.new_context(
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    color_scheme=scheme,
                )
                page = await ctx.new_page()
                await page.goto(url)
                await page.wait_for_function("window.murmur && murmur.ws.readyState === 1")
                await page.evaluate(RUNNING)
                await page.screenshot(path=str(DOCS / f"phone-{scheme}.png"))
                await ctx.close()
        await relay.aclose()


if __name__ == "__main__":
    asyncio.run(main())
