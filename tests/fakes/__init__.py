"""Every test double, each at the boundary it stands in for, on the real interfaces
(STYLE.md). Import fakes from ``tests.fakes`` and nowhere else; its modules are the
boundaries, in order:

- ``model``: the model, in process (``StreamingRuntime``, ``OutOfMemoryRuntime``,
  ``CloseRecordingRuntime``);
- ``agents``: agents (``ScriptedAgent``, ``SleepyAgent``) and the HTTP server an agent
  or a webhook notifier calls (``LocalHTTP``);
- ``speech``: speech out (``InstantTTS``, ``FakeTTS``) and in (``FakeASR``,
  ``ScriptedListener``);
- ``session``: what a session is handed: its task spawner (``Spawner``), its
  delegations' ``emit`` (``DelegationRecorder``), its stream (``ScriptedLink``);
- then the bridge's world: ``clocks``, virtual or recorded; ``bridge``, the link, the
  glasses and the speaker; ``brilliant``, a Frame or Halo under Bleak (the BLE
  boundary); ``companion``, a Companion server and the network between.

``FakeVLLM``, the OpenAI-compatible model server over HTTP, is re-exported from
``tests/fake_vllm.py``: it is a whole HTTP server (streaming, log-probs, a frame cache)
with request-reading helpers only the OpenAI runtime's tests use. Real-audio helpers
(espeak-ng speech, Opus packets, tiny Whisper) are not fakes; they live in
``tests/audio_fixtures.py``.
"""

from tests.fake_vllm import FakeVLLM, Reply
from tests.fakes.agents import LocalHTTP, LocalHTTPReply, ScriptedAgent, SleepyAgent
from tests.fakes.bridge import (
    CAMERA_AND_MIC,
    READY,
    FakeLink,
    FakeSource,
    PressableSource,
    RecordingSink,
    server_pauses,
)
from tests.fakes.brilliant import FakeGlasses, install_fake_bleak
from tests.fakes.clocks import UNIX0, ManualClock, RecordingClock, SteppingClock
from tests.fakes.companion import (
    BRIDGE_SAY,
    FakeCompanion,
    SelfSignedCert,
    TcpProxy,
    companion_server,
    self_signed_cert,
)
from tests.fakes.model import CloseRecordingRuntime, OutOfMemoryRuntime, StreamingRuntime
from tests.fakes.session import DelegationRecorder, ScriptedLink, Spawner
from tests.fakes.speech import EmitRecorder, FakeASR, FakeTTS, InstantTTS, ScriptedListener

__all__ = [
    "BRIDGE_SAY",
    "CAMERA_AND_MIC",
    "READY",
    "UNIX0",
    "CloseRecordingRuntime",
    "DelegationRecorder",
    "EmitRecorder",
    "FakeASR",
    "FakeCompanion",
    "FakeGlasses",
    "FakeLink",
    "FakeSource",
    "FakeTTS",
    "FakeVLLM",
    "InstantTTS",
    "LocalHTTP",
    "LocalHTTPReply",
    "ManualClock",
    "OutOfMemoryRuntime",
    "PressableSource",
    "RecordingClock",
    "RecordingSink",
    "Reply",
    "ScriptedAgent",
    "ScriptedLink",
    "ScriptedListener",
    "SelfSignedCert",
    "SleepyAgent",
    "Spawner",
    "SteppingClock",
    "StreamingRuntime",
    "TcpProxy",
    "companion_server",
    "install_fake_bleak",
    "self_signed_cert",
    "server_pauses",
]
