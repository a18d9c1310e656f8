"""Exceptions raised by ferrogate.

The names mirror the official ``openai`` SDK (and LiteLLM), so code written against either keeps
working: catch ``ferrogate.RateLimitError`` where you caught ``openai.RateLimitError``. Every API
error carries ``status_code``, ``message``, ``provider``, ``code``, ``param`` and ``body`` (the
OpenAI-style error object). Secrets never appear in any of them.
"""

from __future__ import annotations

from typing import Any


class FerrogateError(Exception):
    """Base class of every exception ferrogate raises."""


class ConfigError(FerrogateError, ValueError):
    """The configuration is invalid; the message names the field at fault."""


class APIError(FerrogateError):
    """A request could not be served."""

    status_code: int | None
    message: str
    provider: str | None
    code: str | None
    param: str | None
    type: str | None
    body: Any
    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider: str | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.provider = provider
        self.code = code
        self.param = param
        self.type = type
        self.body = body
        self.retry_after = retry_after

    @property
    def llm_provider(self) -> str | None:
        """The provider, under LiteLLM's attribute name."""
        return self.provider

    def __str__(self) -> str:
        where = f" [{self.provider}]" if self.provider else ""
        status = f"Error code: {self.status_code}{where} - " if self.status_code else ""
        return f"{status}{self.message}"

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[APIError], message: str, state: dict[str, Any]) -> APIError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class APIStatusError(APIError):
    """The request got an HTTP error status (from the provider or from the gateway)."""

    status_code: int


class BadRequestError(APIStatusError):
    """400: the request is malformed or has an invalid value."""


class ContextWindowExceededError(BadRequestError):
    """400: the prompt does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """400: the provider refused the content."""


class AuthenticationError(APIStatusError):
    """401: missing or invalid API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key is not allowed to do this."""


class NotFoundError(APIStatusError):
    """404: unknown model, provider or route."""


class ConflictError(APIStatusError):
    """409."""


class RequestTooLargeError(APIStatusError):
    """413: the request body is over the size limit."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429: rate limited; ``retry_after`` says how long the provider asked to wait."""


class InternalServerError(APIStatusError):
    """5xx from the provider or the gateway."""


class BadGatewayError(InternalServerError):
    """502: the provider answered with something that is not a valid response."""


class ServiceUnavailableError(InternalServerError):
    """503: the provider is overloaded or no deployment can serve the request."""


class APIConnectionError(APIError):
    """The provider could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The provider did not answer in time."""


#: LiteLLM's name for the timeout error.
Timeout = APITimeoutError

_BY_KIND: dict[str, type[APIError]] = {
    "context_window_exceeded": ContextWindowExceededError,
    "content_filtered": ContentPolicyViolationError,
    "authentication": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "payload_too_large": RequestTooLargeError,
    "unprocessable": UnprocessableEntityError,
    "rate_limited": RateLimitError,
    "bad_upstream_response": BadGatewayError,
    "upstream_connection": APIConnectionError,
    "timeout": APITimeoutError,
    "unavailable": ServiceUnavailableError,
    "internal": InternalServerError,
}

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}


def error_class_for(kind: str, status_code: int) -> type[APIError]:
    """The exception class for an engine error kind and HTTP status."""
    cls = _BY_KIND.get(kind)
    if cls is not None:
        return cls
    cls = _BY_STATUS.get(status_code)
    if cls is not None:
        return cls
    if status_code >= 500:
        return InternalServerError
    return APIStatusError


def _from_core(
    *,
    kind: str,
    status_code: int,
    message: str,
    provider: str | None,
    code: str | None,
    param: str | None,
    retry_after: float | None,
    body: Any,
) -> APIError:
    """Called by the Rust core to build the exception for an engine error."""
    cls = error_class_for(kind, status_code)
    error_type = body.get("error", {}).get("type") if isinstance(body, dict) else None
    return cls(
        message,
        status_code=status_code,
        provider=provider,
        code=code,
        param=param,
        type=error_type,
        body=body,
        retry_after=retry_after,
    )


__all__ = [
    "FerrogateError",
    "ConfigError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RequestTooLargeError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "BadGatewayError",
    "ServiceUnavailableError",
    "APIConnectionError",
    "APITimeoutError",
    "Timeout",
    "error_class_for",
]
