"""OpenAI-compatible API of the endpoint: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/models``.

``model`` names an agent. Modules: :mod:`.chat`, :mod:`.responses` (+ :mod:`.responses_stream`),
:mod:`.models`, :mod:`.messages` (input parsing), :mod:`.overlay`, :mod:`.errors`.
"""
