"""The gateway's `/genai` drop-in route (the Gemini API), driven with plain `httpx` requests shaped
as the google-genai SDK sends them (`x-goog-api-key`, snake_case `mime_type`, upper-case schema
types, `:streamGenerateContent?alt=sse`), with an OpenAI-format, a Gemini and a Vertex AI
upstream. When the google-genai SDK happens to be installed, it is driven too."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

UPSTREAMS = {
    "openai-upstream": "openai/gpt-4o-mini",
    "gemini-upstream": "gemini/gemini-2.0-flash",
    "vertex-upstream": "vertex/gemini-2.0-flash",
}
EMBEDDERS = {
    "openai-upstream": "openai/text-embedding-3-small",
    "gemini-upstream": "gemini/text-embedding-004",
    "vertex-upstream": "vertex/text-embedding-005",
}
SDK_HEADERS = {
    "content-type": "application/json",
    "x-goog-api-key": "unused",
    "x-goog-api-client": "google-genai-sdk/1.0.0 gl-python/3.11",
}
WEATHER_TOOL = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
        }
    ]
}
# A 1x1 PNG, base64.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def url(server: str, model: str, action: str, version: str = "v1beta") -> str:
    return f"{server}/genai/{version}/models/{model}:{action}"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def sse_events(body: str) -> list[dict[str, Any]]:
    """`data:` payloads of an SSE body framed with CRLF, as Google frames it."""
    assert "\r\n\r\n" in body
    return [json.loads(e[len("data: ") :]) for e in body.split("\r\n\r\n") if e.startswith("data: ")]


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        p.get("text", "")
        for c in response.get("candidates", [])
        for p in c.get("content", {}).get("parts", [])
        if not p.get("thought")
    )


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
def test_generate_content(server: str, model: str) -> None:
    body = {
        "contents": [{"parts": [{"text": "hello genai"}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50, "candidateCount": 1},
    }
    r = httpx.post(url(server, model, "generateContent"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert text_of(data) == "You said: hello genai"
    assert data["candidates"][0]["finishReason"] == "STOP"
    usage = data["usageMetadata"]
    assert usage["candidatesTokenCount"] == 4 and usage["promptTokenCount"] > 0
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    # The SDK's current default API version is v1; both are served.
    r = httpx.post(url(server, model, "generateContent", "v1"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 200 and text_of(r.json()) == "You said: hello genai"


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
def test_stream_generate_content(server: str, model: str) -> None:
    with httpx.stream(
        "POST",
        url(server, model, "streamGenerateContent") + "?alt=sse",
        headers=SDK_HEADERS,
        json={"contents": [user("stream genai words")]},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert "".join(text_of(e) for e in events) == "You said: stream genai words"
    assert [c.get("finishReason") for e in events for c in e.get("candidates", []) if c.get("finishReason")] == ["STOP"]
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 5


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_function_call_round_trip(server: str, model: str, stream: bool) -> None:
    contents: list[dict[str, Any]] = [user("weather in Lisbon")]
    body = {
        "contents": contents,
        "tools": [WEATHER_TOOL],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    if stream:
        r = httpx.post(url(server, model, "streamGenerateContent") + "?alt=sse", headers=SDK_HEADERS, json=body)
        parts = [p for e in sse_events(r.text) for c in e.get("candidates", []) for p in c.get("content", {}).get("parts", [])]
    else:
        r = httpx.post(url(server, model, "generateContent"), headers=SDK_HEADERS, json=body)
        parts = r.json()["candidates"][0]["content"]["parts"]
    assert r.status_code == 200, r.text
    calls = [p for p in parts if "functionCall" in p]
    assert len(calls) == 1
    assert calls[0]["functionCall"]["name"] == "get_weather" and calls[0]["functionCall"]["args"] == {"city": "Lisbon"}
    contents += [
        {"role": "model", "parts": calls},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "mild"}}}]},
    ]
    r = httpx.post(url(server, model, "generateContent"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 200, r.text
    assert text_of(r.json()) == "The tool returned: mild"


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
def test_image_and_json_mode(server: str, model: str) -> None:
    image = {"inlineData": {"data": PIXEL, "mime_type": "image/png"}}
    r = httpx.post(
        url(server, model, "generateContent"),
        headers=SDK_HEADERS,
        json={"contents": [{"role": "user", "parts": [{"text": "what is this"}, image]}]},
    )
    assert r.status_code == 200, r.text
    assert text_of(r.json()) == "You said: what is this (and 1 image)"
    r = httpx.post(
        url(server, model, "generateContent"),
        headers=SDK_HEADERS,
        json={
            "contents": [user("as json")],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"echo": {"type": "STRING"}}},
            },
        },
    )
    assert r.status_code == 200, r.text
    assert json.loads(text_of(r.json()))["echo"] == "as json"


@pytest.mark.parametrize("key", EMBEDDERS.keys())
def test_embeddings(server: str, key: str) -> None:
    model = EMBEDDERS[key]
    resource = f"models/{model}"
    batch = {
        "requests": [
            {"content": {"parts": [{"text": t}], "role": "user"}, "outputDimensionality": 6, "model": resource} for t in ("a", "b")
        ]
    }
    r = httpx.post(url(server, model, "batchEmbedContents"), headers=SDK_HEADERS, json=batch)
    assert r.status_code == 200, r.text
    embeddings = r.json()["embeddings"]
    assert len(embeddings) == 2 and all(len(e["values"]) == 6 for e in embeddings)
    r = httpx.post(url(server, model, "embedContent"), headers=SDK_HEADERS, json={"content": {"parts": [{"text": "a"}]}})
    assert r.status_code == 200, r.text
    assert r.json()["embedding"]["values"]


def test_errors_in_google_shape(server: str) -> None:
    body = {"contents": [user("x")]}
    r = httpx.post(url(server, "gemini/gemini-2.0-flash-fail-429", "generateContent"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 429
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and r.json()["error"]["code"] == 429
    r = httpx.post(url(server, "nosuch/model", "generateContent"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = httpx.post(url(server, "openai/gpt-4o-mini", "generateContent"), headers=SDK_HEADERS, json={"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = httpx.post(url(server, "openai/gpt-4o-mini-toolong", "generateContent"), headers=SDK_HEADERS, json=body)
    assert r.status_code == 400 and "context" in r.json()["error"]["message"]


def test_google_genai_sdk(server: str) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="unused", http_options={"base_url": f"{server}/genai"})
    for model in UPSTREAMS.values():
        r = client.models.generate_content(model=model, contents="hello sdk", config=types.GenerateContentConfig(system_instruction="be brief"))
        assert r.text == "You said: hello sdk"
        text = "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents="stream sdk"))
        assert text == "You said: stream sdk"
