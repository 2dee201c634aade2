"""The in-process transformers backend (``runtime.py``; layout in each module's docstring)."""

from server.runtime.transformers.options import StepStats, TransformersOptions
from server.runtime.transformers.runtime import TransformersRuntime
from server.runtime.transformers.session import TransformersDebugState, TransformersSession

__all__ = [
    "StepStats",
    "TransformersDebugState",
    "TransformersOptions",
    "TransformersRuntime",
    "TransformersSession",
]
