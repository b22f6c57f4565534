"""The official Anthropic Python SDK against the claude-tower mock binary.

Run by `cargo xtask sdk-conformance` with ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY set to a
running mock (started with that key). Prints one line per check and a closing
"N passed, N failed" line; exits non-zero when a check fails.
"""

import os
import sys

import anthropic

MODEL = "claude-haiku-4-5"
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

client = anthropic.Anthropic(max_retries=0)
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
        except Exception as error:  # noqa: BLE001 - every failure is reported
            results.append((name, f"{type(error).__name__}: {error}"))
        return fn

    return wrap


def expect_error(kind, fn):
    try:
        fn()
    except kind:
        return
    except anthropic.APIStatusError as error:
        raise AssertionError(f"expected {kind.__name__}, got {type(error).__name__} {error.status_code}")
    raise AssertionError(f"expected {kind.__name__}, got no error")


@check("create (non-streaming)")
def _():
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content and message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@check("messages.stream() + get_final_message()")
def _():
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Stream please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


@check("tool use (non-streaming)")
def _():
    message = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    uses = [b for b in message.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and isinstance(uses[0].input, dict)
    assert message.stop_reason == "tool_use"


@check("tool use (streamed, input assembled from partial JSON)")
def _():
    with client.messages.stream(
        model=MODEL,
        max_tokens=200,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses and isinstance(uses[0].input, dict) and uses[0].input
    assert final.stop_reason == "tool_use"


@check("count_tokens")
def _():
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Count these tokens, please."}]
    )
    assert counted.input_tokens > 0


@check("empty messages -> BadRequestError")
def _():
    expect_error(
        anthropic.BadRequestError,
        lambda: client.messages.create(model=MODEL, max_tokens=10, messages=[]),
    )


@check("invalid cache layout -> BadRequestError")
def _():
    block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    expect_error(
        anthropic.BadRequestError,
        lambda: client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [block] * 5}]
        ),
    )


@check("wrong key -> AuthenticationError")
def _():
    other = anthropic.Anthropic(api_key="not-the-key", max_retries=0)
    expect_error(
        anthropic.AuthenticationError,
        lambda: other.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ),
    )


def asked(attempt):
    return lambda: client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-mock-attempt": attempt},
    )


@check("429 -> RateLimitError")
def _():
    expect_error(anthropic.RateLimitError, asked("rate_limited"))


@check("529 -> the SDK's overloaded error")
def _():
    kind = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
    expect_error(kind, asked("overloaded"))


@check("500 -> InternalServerError")
def _():
    expect_error(anthropic.InternalServerError, asked("server_error"))


for name, failure in results:
    print(f"{'ok  ' if failure is None else 'FAIL'} {name}" + ("" if failure is None else f": {failure}"))
passed = sum(1 for _, f in results if f is None)
failed = len(results) - passed
print(f"anthropic {anthropic.__version__}: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
