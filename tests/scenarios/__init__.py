"""The scenario suite (issue 11, item 11): first-person clips with labelled events,
an oracle model that answers from the labels, and metrics of what a session made of
them.

- ``clips``: a ``Scenario`` (mode, language, duration, frame rate, labelled events)
  and its frames, rendered on ``mobile_bridge.synth``'s corridor walk and encoded as
  the bridge encodes them;
- ``oracle``: ``OracleRuntime``, a perfect model at the model boundary, with a
  decision latency in model time and optional chatter;
- ``suite``: one scenario through a real session (virtual time, or a real loop), a
  bridge that answers still requests, a notifier that records emergency alerts;
- ``metrics``: per-run numbers from the server events against the labels.
"""
