"""LLM providers behind one small protocol (:class:`~.base.Provider`): the official ``openai`` SDK for any
OpenAI-compatible endpoint and the official ``anthropic`` SDK. SDKs are imported only when a provider is
built, so importing this package stays cheap."""

from .base import ChatRequest, ChatResponse, Provider, ProviderFailure

__all__ = ["ChatRequest", "ChatResponse", "Provider", "ProviderFailure"]
