"""The OpenAI-compatible HTTP backend (vLLM, vLLM-Omni): ``runtime.py`` and its rooms."""

from server.runtime.openai.client import ModelBadReply, ModelRejected, ModelUnavailable
from server.runtime.openai.runtime import OpenAIRuntime, OpenAIRuntimeOptions

__all__ = [
    "ModelBadReply",
    "ModelRejected",
    "ModelUnavailable",
    "OpenAIRuntime",
    "OpenAIRuntimeOptions",
]
