"""The demo TFrameX app `tframex-asgi serve` runs when no ``--app`` is given.

Agents: ``assistant`` (echoes), ``calculator`` (uses the ``add`` tool), ``shouter`` (answers in
upper case); flow ``echo_then_shout`` (assistant, then shouter). They run on the built-in
offline LLM unless TFRAMEX_LLM_BASE_URL (and _API_KEY, _MODEL) name an OpenAI-compatible one.
"""

from __future__ import annotations

from tframex import BaseLLMWrapper, Flow, TFrameXApp

from tframex_asgi.llm import OfflineLLM, llm_from_env

__all__ = ["build_demo_app", "register_demo"]


def build_demo_app(llm: BaseLLMWrapper | None = None) -> TFrameXApp:
    return register_demo(TFrameXApp(default_llm=llm or llm_from_env() or OfflineLLM(), mcp_config_file=None))


def register_demo(app: TFrameXApp) -> TFrameXApp:
    """Register the demo tools, agents and flow on ``app`` (any TFrameXApp, the drop-in one too)."""

    # Explicit schemas: tframex infers types from runtime annotations, which postponed
    # annotations (PEP 563) turn into strings.
    @app.tool(
        description="Add two numbers and return the sum.",
        parameters_schema={
            "properties": {
                "a": {"type": "number", "description": "first"},
                "b": {"type": "number", "description": "second"},
            },
            "required": ["a", "b"],
        },
    )
    async def add(a: float, b: float) -> float | int:
        total = a + b
        return int(total) if float(total).is_integer() else total

    @app.tool(
        description="Count the words in a text.",
        parameters_schema={"properties": {"text": {"type": "string", "description": "the text"}}, "required": ["text"]},
    )
    def word_count(text: str) -> int:
        return len(text.split())

    @app.agent(name="assistant", description="A general assistant.", system_prompt="You are a helpful assistant.")
    async def assistant() -> None: ...

    @app.agent(
        name="calculator",
        description="Does arithmetic with the add tool.",
        system_prompt="You are a calculator. Use the add tool for sums.",
        tools=["add", "word_count"],
    )
    async def calculator() -> None: ...

    @app.agent(name="shouter", description="Answers in upper case.", system_prompt="Answer in UPPERCASE.")
    async def shouter() -> None: ...

    flow = Flow("echo_then_shout", "The assistant answers, then the shouter repeats it loudly.")
    flow.add_step("assistant").add_step("shouter")
    app.register_flow(flow)
    return app
