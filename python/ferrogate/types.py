"""Response objects.

They are dicts (so ``r["usage"]``, ``json.dumps(r)`` and ``dict(r)`` work) with attribute access
(``r.choices[0].message.content``) and the pydantic-style helpers the ``openai`` SDK and LiteLLM
offer (``model_dump()``, ``model_dump_json()``, ``to_dict()``, ``json()``). Optional fields that
the provider did not send read as ``None``, as they do on the ``openai`` SDK's objects.
"""

from __future__ import annotations

import json as _json
from typing import Any, ClassVar, Iterator


def _plain(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, exclude_none) for k, v in value.items() if not (exclude_none and v is None)}
    if isinstance(value, list):
        return [_plain(v, exclude_none) for v in value]
    return value


class FerroObject(dict):  # type: ignore[type-arg]
    """A JSON object with attribute access."""

    __slots__ = ()
    #: Fields whose values are wrapped in a class: ``{"usage": Usage, "choices": [Choice]}``.
    _nested: ClassVar[dict[str, Any]] = {}
    #: Fields that read as ``None`` when absent.
    _optional: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, data: Any = (), /, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        for key, cls in self._nested.items():
            value = dict.get(self, key)
            if value is None:
                continue
            if isinstance(cls, list):
                item_cls = cls[0]
                if isinstance(value, list):
                    dict.__setitem__(
                        self, key, [v if isinstance(v, item_cls) or not isinstance(v, dict) else item_cls(v) for v in value]
                    )
            elif isinstance(value, dict) and not isinstance(value, cls):
                dict.__setitem__(self, key, cls(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            pass
        if name in type(self)._optional:
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def __reduce__(self) -> Any:
        return (type(self), (dict(self),))

    def model_dump(self, *, exclude_none: bool = False, **_: Any) -> dict[str, Any]:
        """A deep copy as plain dicts and lists."""
        return _plain(self, exclude_none)  # type: ignore[no-any-return]

    def model_dump_json(self, *, indent: int | None = None, exclude_none: bool = False, **_: Any) -> str:
        return _json.dumps(self.model_dump(exclude_none=exclude_none), indent=indent)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def json(self, **kwargs: Any) -> str:
        """LiteLLM / pydantic v1 name for :meth:`model_dump_json`."""
        return self.model_dump_json(**kwargs)


class ServedBy(FerroObject):
    """Which upstream served a call: ``provider``, ``model``, ``key_name`` (never the key),
    ``attempts``, ``fallback_index``, ``upstream_ms`` and ``overhead_us`` (time spent in the
    gateway itself)."""

    __slots__ = ()
    _optional = frozenset({"key_name", "overhead_us"})


class _Served(FerroObject):
    __slots__ = ("_served_by",)

    @property
    def served_by(self) -> ServedBy | None:
        """How this response was served (provider, key name, attempts, fallback index...)."""
        return getattr(self, "_served_by", None)

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """LiteLLM's per-response metadata, for code that reads it."""
        served = self.served_by or ServedBy()
        return {
            "custom_llm_provider": served.get("provider"),
            "model_id": served.get("model"),
            "api_base": None,
            "response_cost": None,
            "additional_headers": {},
        }


class PromptTokensDetails(FerroObject):
    __slots__ = ()
    _optional = frozenset({"cached_tokens", "audio_tokens"})


class CompletionTokensDetails(FerroObject):
    __slots__ = ()
    _optional = frozenset({"reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"})


class Usage(FerroObject):
    __slots__ = ()
    _nested = {"prompt_tokens_details": PromptTokensDetails, "completion_tokens_details": CompletionTokensDetails}
    _optional = frozenset({"prompt_tokens_details", "completion_tokens_details"})


class Function(FerroObject):
    __slots__ = ()


class ChatCompletionMessageToolCall(FerroObject):
    __slots__ = ()
    _nested = {"function": Function}


class Message(FerroObject):
    """An assistant message (``choices[i].message``)."""

    __slots__ = ()
    _nested = {"tool_calls": [ChatCompletionMessageToolCall]}
    _optional = frozenset(
        {"content", "tool_calls", "function_call", "refusal", "audio", "annotations", "name", "reasoning_content"}
    )


ChatCompletionMessage = Message


class Choice(FerroObject):
    __slots__ = ()
    _nested = {"message": Message}
    _optional = frozenset({"finish_reason", "logprobs"})


class ChatCompletion(_Served):
    """A chat completion, shaped like ``openai.types.chat.ChatCompletion``."""

    __slots__ = ()
    _nested = {"choices": [Choice], "usage": Usage}
    _optional = frozenset({"usage", "system_fingerprint", "service_tier"})


#: LiteLLM's name for a chat completion.
ModelResponse = ChatCompletion


class ChoiceDeltaToolCallFunction(FerroObject):
    __slots__ = ()
    _optional = frozenset({"name", "arguments"})


class ChoiceDeltaToolCall(FerroObject):
    __slots__ = ()
    _nested = {"function": ChoiceDeltaToolCallFunction}
    _optional = frozenset({"id", "type", "function"})


class ChoiceDelta(FerroObject):
    __slots__ = ()
    _nested = {"tool_calls": [ChoiceDeltaToolCall]}
    _optional = frozenset({"role", "content", "tool_calls", "function_call", "refusal", "reasoning_content"})


class ChunkChoice(FerroObject):
    __slots__ = ()
    _nested = {"delta": ChoiceDelta}
    _optional = frozenset({"finish_reason", "logprobs"})


class ChatCompletionChunk(FerroObject):
    """One streamed chunk, shaped like ``openai.types.chat.ChatCompletionChunk``."""

    __slots__ = ()
    _nested = {"choices": [ChunkChoice], "usage": Usage}
    _optional = frozenset({"usage", "system_fingerprint", "service_tier"})


class Embedding(FerroObject):
    __slots__ = ()


class EmbeddingUsage(FerroObject):
    __slots__ = ()


class CreateEmbeddingResponse(_Served):
    """An embeddings response, shaped like ``openai.types.CreateEmbeddingResponse``."""

    __slots__ = ()
    _nested = {"data": [Embedding], "usage": EmbeddingUsage}


#: LiteLLM's name for an embeddings response.
EmbeddingResponse = CreateEmbeddingResponse


class Model(FerroObject):
    __slots__ = ()


class ModelList:
    """The models list. Iterating it yields :class:`Model` objects, as the ``openai`` SDK's
    page does; ``.data`` is the list."""

    __slots__ = ("data", "object")

    def __init__(self, payload: dict[str, Any]) -> None:
        self.object: str = payload.get("object", "list")
        self.data: list[Model] = [Model(m) for m in payload.get("data", [])]

    def __iter__(self) -> Iterator[Model]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: str) -> Any:
        return {"object": self.object, "data": self.data}[key]

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return {"object": self.object, "data": [m.model_dump() for m in self.data]}

    def __repr__(self) -> str:
        return f"ModelList(data={self.data!r})"


__all__ = [
    "FerroObject",
    "ServedBy",
    "ChatCompletion",
    "ModelResponse",
    "Choice",
    "Message",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "Function",
    "Usage",
    "PromptTokensDetails",
    "CompletionTokensDetails",
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "CreateEmbeddingResponse",
    "EmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "Model",
    "ModelList",
]
