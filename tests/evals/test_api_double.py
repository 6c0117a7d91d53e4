"""The local Messages / Message Batches server against Anthropic's documentation (audit of 2026-12-02).

Each test states a documented fact (docs/evals.md, "API facts" and "Audit of the API double") and checks that
the double answers as the real API does: a request the API refuses is refused here, one it accepts is accepted.
"""
import json

import anthropic
import httpx
import pytest

from daena_pipelines.evals import judge, judging
from daena_pipelines.defs.evals.resources import AnthropicJudgeResource

from .messages_server import API_KEY, KNOWN_MODELS, MessagesServer
from .test_judge import HI, Ledger, client, post, request, server, settings  # noqa: F401 (server: fixture)

SONNET = "claude-sonnet-5-5"


def body(**kw) -> bytes:
    return json.dumps({"model": SONNET, "max_tokens": 1000, "messages": HI, **kw}).encode()


def error_of(answer: httpx.Response) -> tuple[int, str, str]:
    payload = answer.json()
    assert payload["type"] == "error" and payload["request_id"] == answer.headers["request-id"]
    return answer.status_code, payload["error"]["type"], payload["error"]["message"]


def post_batch(server, payload: dict, key: str = API_KEY) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/messages/batches", content=json.dumps(payload).encode(), timeout=5,
                      headers={"x-api-key": key, "anthropic-version": "2026-10-21", "content-type": "application/json"})


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Judge this."}, {"role": "user", "content": "Scores as JSON."}],
    [{"role": "assistant", "content": "Ready."}, {"role": "user", "content": "Judge this."}],
    HI + [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "go"}],
], ids=["two-user-turns", "assistant-first", "two-assistant-turns-inside"])
def test_role_order_is_not_a_400(server, messages):
    """Messages reference (messages): consecutive user or assistant turns are combined into one turn, and no rule
    on the first message is stated (the 1P API took an assistant-first conversation, anthropic-sdk-typescript #622)."""
    answer = post(server, body(messages=messages))
    assert answer.status_code == 200 and answer.json()["stop_reason"] == "end_turn"


def test_consecutive_turns_combined_are_still_a_prefill_on_5x(server):
    """Two assistant turns at the end combine into one final assistant turn: a prefill, a 400 from Claude 4.6 on."""
    messages = HI + [{"role": "assistant", "content": "{"}, {"role": "assistant", "content": "\"plan"}]
    assert error_of(post(server, body(messages=messages)))[:2] == (400, "invalid_request_error")


@pytest.mark.parametrize("block", [{"type": "markdown", "text": "hi"}, {"type": "input_text", "text": "hi"},
                                   {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
def test_an_unknown_content_block_type_is_a_400(server, block):
    """Messages reference: a content block's type is one of the documented input block types; others are refused."""
    status, kind, message = error_of(post(server, body(messages=[{"role": "user", "content": [block]}])))
    assert (status, kind) == (400, "invalid_request_error") and "messages.0.content.0.type" in message


@pytest.mark.parametrize("content, message", [
    (" ", "non-whitespace"), ([{"type": "text", "text": "\n\t"}], "non-whitespace"), ([{"type": "text", "text": 7}], "string"),
], ids=["blank-string", "blank-block", "text-not-string"])
def test_whitespace_only_text_is_a_400(server, content, message):
    """The API refuses a text block that is blank ("text content blocks must contain non-whitespace text",
    anthropics/claude-code #23369, home-assistant/core #175637), not only an empty one."""
    status, kind, text = error_of(post(server, body(messages=[{"role": "user", "content": content}])))
    assert (status, kind) == (400, "invalid_request_error") and message in text


def test_a_prefill_ending_in_whitespace_is_a_400_where_prefill_is_allowed(server):
    """Prefill page: the prefilled assistant text cannot end with whitespace (Haiku 4.5 still takes a prefill)."""
    def prefill(text):
        messages = HI + [{"role": "assistant", "content": text}]
        return post(server, body(model="claude-haiku-4-5", messages=messages), version="2023-06-01")

    assert prefill("{").status_code == 200
    assert error_of(prefill("{ "))[:2] == (400, "invalid_request_error")


def test_documented_block_types_other_than_text_are_accepted(server):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    conversation = [{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cup"}]}]
    assert post(server, body(messages=conversation)).status_code == 200


def test_max_tokens_zero_pre_warms_the_cache_but_not_inside_a_batch(server):
    """Messages reference: max_tokens minimum 0, where 0 only populates the prompt cache; the batch-processing page:
    a batch request needs max_tokens of at least 1. A negative or non-integer max_tokens is a 400."""
    answer = post(server, body(max_tokens=0))
    assert answer.status_code == 200
    assert answer.json()["content"] == [] and answer.json()["usage"]["output_tokens"] == 0
    for bad in (-1, "10", 10.5, True):
        assert error_of(post(server, body(max_tokens=bad)))[:2] == (400, "invalid_request_error")
    created = post_batch(server, {"requests": [{"custom_id": "warm", "params": json.loads(body(max_tokens=0))}]})
    assert created.status_code == 200  # params are checked when the request runs: an errored result, not a 400
    batch_id = created.json()["id"]
    httpx.get(f"{server.base_url}/v1/messages/batches/{batch_id}", headers={"x-api-key": API_KEY, "anthropic-version": "2026-10-21"})
    (item,) = client(server).messages.batches.results(batch_id)
    assert item.result.type == "errored" and item.result.error.error.type == "invalid_request_error"
    assert "max_tokens" in item.result.error.error.message


@pytest.mark.parametrize("model, status, kind", [(123, 400, "invalid_request_error"), (["claude-sonnet-5-5"], 400, "invalid_request_error"),
                                                 ("gpt-4o", 404, "not_found_error"), ("claude-sonnet-5.5", 404, "not_found_error")])
def test_a_model_that_is_not_a_known_id_string(server, model, status, kind):
    """model is a string (a 400 otherwise); a string that names no model is a 404 not_found_error (errors page)."""
    assert error_of(post(server, body(model=model)))[:2] == (status, kind)


@pytest.mark.parametrize("params, status", [
    ({"temperature": 0.0}, 200), ({"temperature": 1.0}, 200), ({"temperature": 1.5}, 400), ({"temperature": -0.1}, 400),
    ({"temperature": "0.5"}, 400), ({"top_p": 1.2}, 400), ({"top_k": -1}, 400), ({"top_k": 2.5}, 400), ({"top_k": 40}, 200),
])
def test_sampling_ranges_where_sampling_is_still_accepted(server, params, status):
    """Under 2023-06-01 Haiku 4.5 still takes temperature/top_p/top_k: temperature and top_p range 0.0..1.0, top_k is
    a non-negative integer (Messages reference before 2026-10-21)."""
    answer = post(server, body(model="claude-haiku-4-5", **params), version="2023-06-01")
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize("params, status", [
    ({"metadata": {"user_id": "3f2a9c"}}, 200), ({"metadata": {"user_id": None}}, 200), ({"metadata": {}}, 200),
    ({"metadata": {"user_id": 5}}, 400), ({"metadata": {"session": "s1"}}, 400), ({"metadata": "s1"}, 400),
    ({"stop_sequences": ["</judgement>"]}, 200), ({"stop_sequences": "</judgement>"}, 400), ({"stop_sequences": [1]}, 400),
    ({"service_tier": "auto"}, 200), ({"service_tier": "standard_only"}, 200), ({"service_tier": "priority"}, 400),
    ({"system": [{"type": "text", "text": "Be terse."}]}, 200), ({"system": "Be terse."}, 200),
    ({"thinking": "adaptive"}, 400), ({"output_config": "json"}, 400), ({"tool_choice": "auto"}, 400),
    ({"tools": [{"name": "record", "input_schema": {"type": "object"}}]}, 200), ({"tools": {"name": "record"}}, 400),
    ({"tools": [{"name": "record"}]}, 400), ({"tools": [{"input_schema": {"type": "object"}}]}, 400),
])
def test_the_shapes_of_the_optional_fields(server, params, status):
    """Messages reference: metadata is an object whose one field is user_id (an opaque string); nested objects are
    validated strictly (anthropic-sdk-typescript #553); stop_sequences a list of strings; service_tier auto or
    standard_only; system a string or a list of text blocks; thinking, output_config, tool_choice objects; a client
    tool requires name and input_schema (the SDK's ToolParam)."""
    answer = post(server, body(**params))
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_a_stop_sequence_in_the_reply_stops_it_there(server):
    """Messages reference (stop_sequences): when the model meets one, stop_reason is stop_sequence and stop_sequence
    names it; the judge does not score such a reply (it is not a finished judgement)."""
    message = client(server).messages.create(model=SONNET, max_tokens=1000, messages=HI, stop_sequences=["safetyScore"])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "safetyScore"
    assert "safetyScore" not in message.content[-1].text
    with pytest.raises(judge.InvalidJudgement, match="stop_sequence"):
        judge.parse_judgement(message.content, message.stop_reason)


@pytest.mark.parametrize("budget, status", [(512, 400), (None, 400), (1024, 200)])
def test_manual_thinking_needs_a_budget_of_at_least_1024(server, budget, status):
    """Messages reference (thinking): with type enabled you set a budget_tokens of at least 1,024 (Haiku 4.5 here)."""
    thinking = {"type": "enabled", **({"budget_tokens": budget} if budget else {})}
    answer = post(server, body(model="claude-haiku-4-5", max_tokens=4000, thinking=thinking), version="2023-06-01")
    assert answer.status_code == status, answer.text


def test_more_than_100000_messages_is_a_400(server):
    """Messages reference: a limit of 100,000 messages in a single request."""
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 50_000 + HI
    assert error_of(post(server, body(messages=turns)))[:2] == (400, "invalid_request_error")


def test_a_body_over_the_size_limit_is_a_413_before_auth(server):
    """Errors page, request size limits: 32 MB on Messages, 256 MB on Batches, a 413 request_too_large returned
    before the request reaches the API servers (so before the key is checked). Limits lowered to test cheaply."""
    server.max_body_bytes = {"/v1/messages": 2_000, "/v1/messages/batches": 3_000}
    big = body(messages=[{"role": "user", "content": "x" * 2_500}])
    answer = httpx.post(f"{server.base_url}/v1/messages", content=big, timeout=5,
                        headers={"x-api-key": "wrong", "anthropic-version": "2026-10-21"})
    assert error_of(answer)[:2] == (413, "request_too_large")
    assert post(server, body()).status_code == 200  # under the limit
    entry = {"custom_id": "a", "params": json.loads(big)}
    assert post_batch(server, {"requests": [entry]}).status_code == 200  # 2.6 KB: over the Messages limit, not the batch one
    assert error_of(post_batch(server, {"requests": [entry, {**entry, "custom_id": "b"}]}))[:2] == (413, "request_too_large")


@pytest.mark.parametrize("payload, message", [
    ({"requests": []}, "requests"),
    ({}, "requests"),
    ({"requests": [{"custom_id": "a"}]}, "requests.0"),
    ({"requests": [{"custom_id": "a", "params": "hi"}]}, "requests.0"),
    ({"requests": [{"custom_id": "a", "params": {}, "priority": 1}]}, "requests.0"),
    ({"requests": [{"custom_id": "x" * 65, "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "", "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "a b", "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "j1.0", "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": 7, "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "a", "params": {}}], "webhook": "https://x"}, "webhook"),
], ids=["empty", "no-requests", "no-params", "params-not-object", "extra-field", "id-65-chars", "id-empty",
        "id-space", "id-dot", "id-not-string", "id-duplicate", "extra-top-level"])
def test_a_batch_the_api_refuses_is_a_400(server, payload, message):
    """Create a Message Batch reference: requests has 1..100,000 items, each {custom_id, params}; custom_id is
    unique in the batch, 1-64 characters of [a-zA-Z0-9_-]."""
    status, kind, text = error_of(post_batch(server, payload))
    assert (status, kind) == (400, "invalid_request_error") and message in text
    assert server.batches == {}


def test_the_batch_limits_and_a_64_character_id_are_accepted(server):
    server.max_batch_requests = 2  # the documented 100,000, lowered to test cheaply
    entry = {"custom_id": "a" * 64, "params": json.loads(body())}
    assert post_batch(server, {"requests": [entry, {**entry, "custom_id": "b"}]}).status_code == 200
    three = [{**entry, "custom_id": c} for c in "xyz"]
    assert error_of(post_batch(server, {"requests": three}))[:2] == (400, "invalid_request_error")


def test_batch_status_and_the_results_file_have_the_documented_shapes():
    """Message Batches reference: processing_status in_progress -> ended (canceling after a cancel); results are
    JSONL, one {custom_id, result} per request, result type succeeded (message) / errored (an error response:
    type error, error {type, message}) / canceled / expired, in any order."""
    headers = {"x-api-key": API_KEY, "anthropic-version": "2026-10-21"}
    with MessagesServer(batch_polls_to_end=2) as server:
        server.batch_results = {"e": ("errored", "invalid_request_error", "bad"), "x": ("expired",), "c": ("canceled",)}
        params = json.loads(body())
        created = post_batch(server, {"requests": [{"custom_id": c, "params": params} for c in "sexc"]}).json()
        assert created["processing_status"] == "in_progress" and created["results_url"] is None
        assert created["request_counts"] == {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        url = f"{server.base_url}/v1/messages/batches/{created['id']}"
        assert httpx.get(url, headers=headers).json()["processing_status"] == "in_progress"
        ended = httpx.get(url, headers=headers).json()
        assert ended["processing_status"] == "ended" and ended["ended_at"] is not None
        assert ended["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 1, "expired": 1}
        lines = [json.loads(line) for line in httpx.get(ended["results_url"], headers=headers).text.splitlines()]
        results = {line["custom_id"]: line["result"] for line in lines}
        assert all(set(line) == {"custom_id", "result"} for line in lines)
        assert results["s"]["type"] == "succeeded" and results["s"]["message"]["type"] == "message"
        assert results["e"] == {"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error",
                                                                                        "message": "bad"}}}
        assert results["x"] == {"type": "expired"} and results["c"] == {"type": "canceled"}
    with MessagesServer(batch_polls_to_end=None) as server:
        batch_id = post_batch(server, {"requests": [{"custom_id": "s", "params": params}]}).json()["id"]
        cancelled = httpx.post(f"{server.base_url}/v1/messages/batches/{batch_id}/cancel", headers=headers).json()
        assert cancelled["processing_status"] == "canceling" and cancelled["cancel_initiated_at"] is not None


@pytest.mark.parametrize("code, kind", [(402, "billing_error"), (409, "conflict_error"), (504, "timeout_error"),
                                        (408, "invalid_request_error"), (422, "invalid_request_error")])
def test_the_error_type_per_status(server, code, kind):
    """Errors page: 402 billing_error, 409 conflict_error, 504 timeout_error; a 4XX it does not list (408, 422)
    may come as invalid_request_error. (408 was answered as timeout_error, which the page gives to 504.)"""
    server.script = [("status", code)]
    assert error_of(post(server, body()))[:2] == (code, kind)


@pytest.mark.parametrize("code, calls, status", [(402, 1, "not_judged"), (504, 2, "judged"), (413, 1, "not_judged")])
def test_the_judge_on_the_newly_listed_errors(server, code, calls, status):
    """A 402 billing_error or 413 is final (the SDK retries 408, 409, 429 and 5xx only): the row is not_judged with
    the status and the request id; a 504 timeout_error is retried like any 5xx."""
    server.script = [("status", code, {"retry-after-ms": "1"})]
    (row,) = judge.judge([request()], settings(server), client(server), "", {})
    assert row["status"] == status and len(server.requests) == calls
    if status == "not_judged":
        assert f"HTTP {code}" in row["reason"] and row["request_id"].startswith("req_sim_") and row["plan_clarity"] is None


# ---- our client against the documented limits and shapes ---------------------------------------------------


def test_the_judge_splits_a_run_into_batches_within_the_limits(server, monkeypatch):
    """A Message Batch holds at most 100,000 requests / 256 MB: a run with more is sent as several batches (limits
    lowered on both sides to test cheaply); every row is judged and each batch is in the ledger."""
    monkeypatch.setattr(judge, "BATCH_MAX_REQUESTS", 2)
    server.max_batch_requests = 2
    ledger = Ledger()
    cfg = settings(server, batch_mode=True, batch_poll_s=0.0)
    rows = judge.judge([request(s) for s in "abc"], cfg, client(server), "", {}, ledger, sleep=lambda s: None)
    assert [r["status"] for r in rows] == ["judged"] * 3
    assert sorted(ledger.batches) == ["msgbatch_sim_0", "msgbatch_sim_1"]
    assert sorted(len(v["ids"]) for v in ledger.batches.values()) == [1, 2]


def test_a_batch_the_api_refuses_leaves_its_rows_not_judged_with_the_400(server):
    server.max_batch_requests = 2  # the judge still thinks 100,000: the API's 400 must reach the rows
    rows = judge.judge([request(s) for s in "abc"], settings(server, batch_mode=True, batch_poll_s=0.0),
                       client(server), "", {}, Ledger(), sleep=lambda s: None)
    assert {r["status"] for r in rows} == {"not_judged"} and all("400" in r["reason"] for r in rows)
    assert all(r["plan_clarity"] is None for r in rows)
    assert judging.run_summary(rows)["simulator"]["statuses"] == {"not_judged": 3}


def test_batch_chunks_respect_the_byte_limit(monkeypatch):
    monkeypatch.setattr(judge, "BATCH_MAX_BYTES", 1024 + 300)
    entries = [{"custom_id": str(i), "params": {"text": "x" * 100}} for i in range(5)]
    chunks = judge.batch_chunks(entries)
    assert [e for c in chunks for e in c] == entries and len(chunks) == 3
    assert all(sum(len(json.dumps(e)) + 2 for e in c) <= 300 for c in chunks)


def test_an_errored_batch_result_is_recorded_not_judged_and_counted(server):
    """A request the API refuses inside a batch comes back errored: the row is not_judged with the error, no score."""
    cfg = settings(server, batch_mode=True, batch_poll_s=0.0, max_tokens=0)
    (row,) = judge.judge([request()], cfg, client(server), "", {}, Ledger(), sleep=lambda s: None)
    assert row["status"] == "not_judged" and "invalid_request_error" in row["reason"] and "max_tokens" in row["reason"]
    assert row["plan_clarity"] is None and judging.run_summary([row])["simulator"]["statuses"] == {"not_judged": 1}
    with pytest.raises(ValueError):
        AnthropicJudgeResource(max_tokens=0)  # the resource refuses it before any call


@pytest.mark.parametrize("model", sorted(KNOWN_MODELS))
def test_the_judge_batch_requests_are_accepted_on_every_model(server, model):
    rows = judge.judge([request()], settings(server, model=model, batch_mode=True, batch_poll_s=0.0),
                       client(server), "", {}, Ledger(), sleep=lambda s: None)
    assert rows[0]["status"] == "judged", rows[0]["reason"]


def test_no_key_in_batch_mode_is_not_judged_without_a_batch(server, monkeypatch):
    monkeypatch.delenv("DAENA_TEST_NO_KEY", raising=False)
    resource = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_NO_KEY", base_url=server.base_url, batch_mode=True)
    c, reason = resource.client()
    rows = judge.judge([request("a"), request("b")], resource.settings(), c, reason, {}, Ledger())
    assert [r["status"] for r in rows] == ["not_judged"] * 2 and all("DAENA_TEST_NO_KEY" in r["reason"] for r in rows)
    assert server.batches == {} and server.requests == [] and all(r["plan_clarity"] is None for r in rows)


def test_the_spend_cap_429_names_its_code_and_says_no_retry_after(server):
    """Errors page: a usage tier's monthly spend cap is a 429 rate_limit_error whose error.details.error_code is
    enforced_spend_limit_reached and that carries no retry-after (a rate limit's 429 does); the SDK raises it as
    EnforcedSpendLimitReachedError."""
    server.script = [("spend_limit",), ("status", 429)]
    cap, limited = post(server, body()), post(server, body())
    assert error_of(cap)[:2] == (429, "rate_limit_error") and "retry-after" not in cap.headers
    assert cap.json()["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert limited.headers["retry-after"] == "1" and "details" not in limited.json()["error"]
    server.script = [("spend_limit",)]
    with pytest.raises(anthropic.EnforcedSpendLimitReachedError) as raised:
        client(server, max_retries=0).messages.create(model=SONNET, max_tokens=1000, messages=HI)
    assert raised.value.error_code == "enforced_spend_limit_reached"
