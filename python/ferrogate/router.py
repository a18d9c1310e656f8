"""``Router``: LiteLLM's router interface (``model_list`` of ``model_name`` + ``litellm_params``,
``fallbacks``, ``num_retries``, ``timeout``...) driving ferrogate's Rust router: weighted
deployments, key rotation, circuit breakers, adaptive balancing, retries and fallbacks.

    router = ferrogate.Router(
        model_list=[
            {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-..."}},
            {"model_name": "gpt-4o", "litellm_params": {"model": "azure/gpt-4o", "api_base": "https://..."}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-3-5-sonnet-latest"}},
        ],
        fallbacks=[{"gpt-4o": ["claude"]}],
        num_retries=2,
    )
    router.completion(model="gpt-4o", messages=[...])
"""

from __future__ import annotations

from typing import Any, Mapping

from ._gateway import Gateway
from .types import CreateEmbeddingResponse

#: LiteLLM routing strategies and the balancing that serves the same purpose.
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "latency-based-routing": "adaptive",
    "least-busy": "adaptive",
    "usage-based-routing": "adaptive",
    "usage-based-routing-v2": "adaptive",
    "cost-based-routing": "weighted",
}


def _fallback_map(entries: list[Mapping[str, list[str]]] | None, what: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in entries or []:
        if not isinstance(entry, Mapping):
            raise ValueError(f"{what} must be a list of {{model_name: [fallback, ...]}} mappings, got {entry!r}")
        for name, targets in entry.items():
            if isinstance(targets, str):
                targets = [targets]
            out.setdefault(name, []).extend(targets)
    return out


def config_from_model_list(
    model_list: list[Mapping[str, Any]],
    *,
    fallbacks: list[Mapping[str, list[str]]] | None = None,
    context_window_fallbacks: list[Mapping[str, list[str]]] | None = None,
    num_retries: int | None = None,
    routing_strategy: str = "simple-shuffle",
    allowed_fails: int | None = None,
    cooldown_time: float | None = None,
    base_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ferrogate config equivalent to a LiteLLM router setup."""
    config: dict[str, Any] = dict(base_config or {})
    models: dict[str, Any] = dict(config.get("models", {}))
    for i, entry in enumerate(model_list):
        name = entry.get("model_name")
        params = entry.get("litellm_params") or entry.get("params")
        if not name or not isinstance(params, Mapping) or not params.get("model"):
            raise ValueError(
                f"model_list[{i}] needs `model_name` and `litellm_params` with a `model`, got {dict(entry)!r}"
            )
        target = str(params["model"])
        if "/" not in target:
            # LiteLLM's default provider for a bare name.
            target = f"openai/{target}"
        deployment: dict[str, Any] = {"model": target, "weight": int(params.get("weight", 1))}
        if params.get("api_key"):
            deployment["api_key"] = params["api_key"]
        if params.get("api_base") or params.get("base_url"):
            deployment["base_url"] = params.get("api_base") or params.get("base_url")
        deployment_id = (entry.get("model_info") or {}).get("id")
        if deployment_id:
            deployment["name"] = str(deployment_id)
        models.setdefault(name, {"deployments": []})["deployments"].append(deployment)
    for name, targets in _fallback_map(fallbacks, "fallbacks").items():
        models.setdefault(name, {"deployments": []})["fallbacks"] = targets
    for name, targets in _fallback_map(context_window_fallbacks, "context_window_fallbacks").items():
        models.setdefault(name, {"deployments": []})["context_window_fallbacks"] = targets
    config["models"] = models
    routing = dict(config.get("routing", {}))
    if num_retries is not None:
        routing["retries"] = int(num_retries)
    if routing_strategy not in _STRATEGIES:
        raise ValueError(f"unknown routing_strategy {routing_strategy!r}; known: {', '.join(_STRATEGIES)}")
    routing.setdefault("balancing", _STRATEGIES[routing_strategy])
    breaker = dict(routing.get("circuit_breaker", {}))
    if allowed_fails is not None:
        breaker["failures"] = int(allowed_fails) + 1
    if cooldown_time is not None:
        breaker["cooldown"] = float(cooldown_time)
    if breaker:
        routing["circuit_breaker"] = breaker
    config["routing"] = routing
    return config


class Router:
    """LiteLLM's ``Router``, on the Rust engine. Unknown keyword arguments of LiteLLM's router
    (caching, callbacks, Redis settings...) are accepted and ignored."""

    def __init__(
        self,
        model_list: list[Mapping[str, Any]] | None = None,
        *,
        fallbacks: list[Mapping[str, list[str]]] | None = None,
        context_window_fallbacks: list[Mapping[str, list[str]]] | None = None,
        num_retries: int | None = None,
        timeout: float | None = None,
        routing_strategy: str = "simple-shuffle",
        allowed_fails: int | None = None,
        cooldown_time: float | None = None,
        config: Mapping[str, Any] | None = None,
        **_ignored: Any,
    ) -> None:
        self.model_list = list(model_list or [])
        self.timeout = timeout
        self._config = config_from_model_list(
            self.model_list,
            fallbacks=fallbacks,
            context_window_fallbacks=context_window_fallbacks,
            num_retries=num_retries,
            routing_strategy=routing_strategy,
            allowed_fails=allowed_fails,
            cooldown_time=cooldown_time,
            base_config=config,
        )
        self.gateway = Gateway(self._config)

    def _with_timeout(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)
        return kwargs

    def completion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        return self.gateway.completion(model, messages, **self._with_timeout(kwargs))

    async def acompletion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        return await self.gateway.acompletion(model, messages, **self._with_timeout(kwargs))

    def embedding(self, model: str, input: Any, **kwargs: Any) -> CreateEmbeddingResponse:
        return self.gateway.embedding(model, input, **self._with_timeout(kwargs))

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> CreateEmbeddingResponse:
        return await self.gateway.aembedding(model, input, **self._with_timeout(kwargs))

    def get_model_names(self) -> list[str]:
        return sorted({str(m["model_name"]) for m in self.model_list})

    @property
    def config(self) -> dict[str, Any]:
        """The effective ferrogate config, secrets redacted."""
        return self.gateway.config
