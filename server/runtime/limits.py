"""Facts about the interaction model that several rooms need, in one leaf.

Imported by the runtime backends, by ``server/config.py`` (the default model) and
by ``server/session/frames.py`` (the decode-time pixel cap); it imports nothing.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODEL", "MAX_PIXELS"]

# JD's JoyAI-VL-Interaction (qwen3_vl, ~8.8 B parameters) on the Hugging Face hub.
DEFAULT_MODEL = "jdopensource/JoyAI-VL-Interaction"

# The reference system caps frames at 262,144 pixels (512×512): more costs vision
# tokens (32×32 pixels each after merging) without helping the model.
MAX_PIXELS = 262_144
