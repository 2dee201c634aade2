"""Facts about the interaction model that several rooms need, in one leaf.

Imported by the runtime backends, by ``server/config.py`` (the default model) and
by ``server/session/frames.py`` (the decode-time pixel cap); it imports nothing.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODEL", "MAX_PIXELS", "PIXELS_PER_TOKEN", "STILL_MAX_PIXELS"]

# JD's JoyAI-VL-Interaction (qwen3_vl, ~8.8 B parameters) on the Hugging Face hub.
DEFAULT_MODEL = "jdopensource/JoyAI-VL-Interaction"

# Qwen3-VL's processor cuts 16×16 patches and merges them 2×2: one vision token per
# 32×32 pixels. It takes images from 65,536 up to 16,777,216 pixels (its preprocessor
# config's size.shortest_edge / longest_edge) and fits each into that range.
PIXELS_PER_TOKEN = 32 * 32

# The reference system caps frames at 262,144 pixels (512×512, 256 vision tokens):
# more costs vision tokens on every tick without helping a 1 fps glance.
MAX_PIXELS = 262_144

# A still the server asked for (reading a sign, a label) gets 4× a frame's pixels:
# 1,048,576 (1024×1024; 1182×887 at 4:3) = 1,024 vision tokens, once, not per tick.
# At the frame cap a 4:3 view is 591×443 px, and print that a 1280 px still shows
# 12 px high (what OCR and the model still read) shrinks below 6 px, under half a
# 16 px patch; 4× the pixels is 2× the linear size, so it stays ~11 px. The cost
# stays small beside a KV chunk (~31.5k tokens: 1,024 is 3.4 ticks of a 300-token
# tick budget, 144 MiB of bf16 KV on the 8B) and 16× under the processor's own
# ceiling; the next step, 16× (4,096 tokens), would be 13 ticks' worth per still.
STILL_MAX_PIXELS = 4 * MAX_PIXELS
