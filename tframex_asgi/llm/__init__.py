"""LLM wrappers: a deterministic offline LLM and a strict OpenAI-compatible one."""

from tframex_asgi.llm.offline import OfflineLLM
from tframex_asgi.llm.openai import StrictOpenAIChatLLM, llm_from_env
from tframex_asgi.llm.usage import current_usage, report_usage

__all__ = ["OfflineLLM", "StrictOpenAIChatLLM", "current_usage", "llm_from_env", "report_usage"]
