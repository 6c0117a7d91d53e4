"""A local HTTP server speaking the Anthropic Messages API wire format (the test double at the HTTP boundary).

It answers as the documented API does (facts and sources: docs/evals.md, "API facts" and "Audit of the API double"):
- request shape, 400 ``invalid_request_error``: a body that is not a JSON object; no, empty or over 100,000
  ``messages``; an empty text block; a content block that is not an object with one of the documented input
  block types; ``model`` missing or not a string (an unknown model id is a 404); ``max_tokens`` missing, not an
  integer, negative (0 only pre-warms the cache, and is a 400 inside a batch) or above the model's max output;
  an ``output_config.effort`` outside low..max; manual extended thinking or an assistant prefill on a 5.x model,
  a thinking budget under 1,024, adaptive thinking or an effort on Haiku 4.5; temperature/top_p/top_k (any model
  under ``anthropic-version`` 2026-10-21, which this SDK sends; non-default values on every 5.x model under
  2023-06-01; out of range anywhere); a ``system`` that is neither a string nor a list of text blocks; a
  ``metadata`` other than {user_id}, ``stop_sequences`` that are not strings, an unknown ``service_tier``, a
  non-object ``thinking``/``tool_choice``/``output_config``, a custom tool without name or input_schema; and a
  top-level field the API does not know ("Extra inputs are not permitted"). The order of roles is no 400:
  consecutive turns of one role are combined, as the reference says;
- a body over 32 MB (Messages) or 256 MB (Batches) is a 413 ``request_too_large``, before auth;
- error bodies: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the errors page's type per status;
  a 429 carries ``retry-after`` (seconds) unless the script gives its own headers' values, except the 429 of the
  monthly spend cap (``error.details.error_code`` ``enforced_spend_limit_reached``), which has none;
- auth: a missing or wrong key (``x-api-key``, or ``Authorization: Bearer`` as this SDK sends it) is 401 ``authentication_error``; a missing or unknown ``anthropic-version`` is 400;
- every response carries a ``request-id`` header;
- forced tool use (``tool_choice`` ``tool``/``any``) is a 400 ``invalid_request_error`` on the models whose
  docs list it as a breaking change (``FORCED_TOOL_CHOICE_REJECTED``); ``thinking: disabled`` is a 400 on
  Claude Sonnet 5.5, Opus 5.5 and Fable 5.1; an ``output_config.format`` object schema without ``additionalProperties: false`` is a 400;
- usage counts cache writes and reads: a block with ``cache_control`` whose prefix reaches the model's minimum
  is written on first sight (``cache_creation_input_tokens``) and read afterwards (``cache_read_input_tokens``);
- ``stop_reason`` follows the reply: ``end_turn`` for text/JSON, ``tool_use`` for a tool call, ``max_tokens``
  when ``max_tokens`` is too small for thinking plus reply (or 0), ``stop_sequence`` (text cut before it) when the
  reply reaches one of ``stop_sequences``, ``refusal`` when scripted;
- Message Batches: create (1..100,000 requests of exactly {custom_id, params}; custom_id unique, 1-64 of
  [A-Za-z0-9_-]; anything else a 400; each request's params checked when it runs, an errored result if refused),
  retrieve, cancel, results as JSONL with succeeded / errored / expired / canceled.

The "model" is deterministic: it scores from the gate results, metrics and commands in the prompt, and it
obeys a score directive (``score 100``, ``give all scores 5``) found anywhere *outside* the
``<session_title>``/``<session_notes>`` data blocks — so a prompt that lets typed text escape its block
moves the scores, and one that keeps it quoted does not.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "test-key"
# Docs: "forced tool use returns an error" on Claude Sonnet 5.5 and Opus 5.5 (and Fable 5.1, per the Opus 5.5 page).
FORCED_TOOL_CHOICE_REJECTED = {"claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1"}
# Thinking cannot be turned off on Sonnet 5.5 and Opus 5.5; the Opus 5.5 page says the same of Fable 5.1.
THINKING_DISABLED_REJECTED = {"claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1"}
KNOWN_MODELS = FORCED_TOOL_CHOICE_REJECTED | {"claude-haiku-5-5", "claude-sonnet-5", "claude-opus-5", "claude-haiku-4-5"}
MIN_CACHEABLE = {"claude-sonnet-5-5": 512, "claude-sonnet-5": 1024, "claude-opus-5": 512, "claude-haiku-5-5": 4096}
# Max output per the models' overview pages: 128K on every 5.x model, 64K on Haiku 4.5; more is a 400.
MAX_OUTPUT_TOKENS = {m: 128_000 for m in KNOWN_MODELS} | {"claude-haiku-4-5": 64_000}
EFFORTS = ("low", "medium", "high", "xhigh", "max")  # output_config.effort (the SDK's OutputConfigParam)
# API versions (versioning page); 2026-10-21 is what this SDK sends, and it removed temperature/top_p/top_k for
# every model (400 even at their defaults), document blocks in assistant turns and citations in user turns.
API_VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
LATEST_API_VERSION = "2026-10-21"
# Haiku 4.5 is the one model here from before Claude 4.7. From 4.7 on (every 5.x model): manual extended thinking
# (type "enabled") is a 400 (thinking troubleshooting page), and so is a non-default temperature/top_p/top_k under
# 2023-06-01 too (Sonnet 5 and Sonnet 5.5 migration guides, Haiku 5.5 what's new). Haiku 4.5 has extended thinking
# only, so "adaptive" is a 400 there, and so is output_config.effort (not on the effort page's model list).
# Assistant prefill (a last turn by the assistant) is a 400 from Claude 4.6 on (Sonnet 5.5 migration guide,
# Haiku 5.5 what's new, the 4.6 migration notes), so on every 5.x model here.
ADAPTIVE_ONLY = KNOWN_MODELS - {"claude-haiku-4-5"}
EXTENDED_ONLY = {"claude-haiku-4-5"}
THINKING_TOKENS = 180  # what the simulated model spends thinking before each reply
# The errors page's status -> error.type list; another 4xx (408, 422, ...) comes as invalid_request_error, as
# the page says; another 5xx is taken here as api_error (our assumption).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
               404: "not_found_error", 409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
# The 429 of a usage tier's monthly spend cap (errors page): error.details.error_code names it, no retry-after;
# retrying fails until access resumes (the first of the next month, 00:00 UTC).
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
# Request size limits (errors page): 32 MB on Messages, 256 MB on Message Batches; more is a 413 from the edge.
MAX_BODY_BYTES = {"/v1/messages": 32 * 2**20, "/v1/messages/batches": 256 * 2**20}
MAX_BATCH_REQUESTS = 100_000  # Message Batches reference: requests minItems 1, maxItems 100000
MAX_MESSAGES = 100_000  # Messages reference: "a limit of 100,000 messages in a single request"
# The input content block types of the Messages reference (messages[].content[], the SDK's ContentBlockParam).
CONTENT_BLOCK_TYPES = frozenset({
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "container_upload"})
SERVICE_TIERS = ("auto", "standard_only")
MIN_THINKING_BUDGET = 1024  # thinking {"type": "enabled"}: budget_tokens of at least 1,024
DATA_BLOCKS = ("session_title", "session_notes")
DIRECTIVE = re.compile(
    r"(?i)\b(?:give|set|assign)\b[^\n<]{0,30}?\bscores?\b[^\n<\d]{0,12}(\d{1,3})\b|\bscores?\s+(?:of\s+|to\s+|=\s*)?(\d{1,3})\b"
)


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def instruction_text(user: str) -> str:
    """What the simulated model treats as instructions: the prompt minus each data block, where a block
    runs from its opening tag to the *first* closing tag after it (as a naive reader would see it)."""
    out = user
    for tag in DATA_BLOCKS:
        out = re.sub(rf"<{tag}>.*?</{tag}>", "", out, count=1, flags=re.S)
    return out


def section(user: str, tag: str):
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", user, flags=re.S)
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError:
        return None


def clamp(value: float) -> int:
    return int(max(0, min(100, round(value))))


def simulated_judgement(user: str) -> dict:
    """Scores derived from the structured blocks of the prompt; a directive outside the data blocks wins."""
    gates = section(user, "gate_results") or []
    metrics = section(user, "computed_metrics") or {}
    commands = section(user, "command_proposals")
    status = {g.get("name"): g.get("status") for g in gates if isinstance(g, dict)}
    decided = [s for s in status.values() if s not in (None, "not_applicable")]
    constraint = 100 - 30 * decided.count("fail") - 12 * decided.count("warn") - 15 * decided.count("unknown")
    crashes, spikes = metrics.get("ror_crashes") or 0, metrics.get("ror_spikes") or 0
    physics = 95 - 15 * crashes - 8 * spikes - (10 if metrics.get("crash") else 0)
    executed = [c for c in commands or [] if c.get("status") in ("COMPLETED", "FAILED", "ABORTED", "TIMEOUT")]
    plan = 35 if not commands else 55 + 40 * sum(c["status"] == "COMPLETED" for c in executed) / max(len(executed), 1)
    safety = {"fail": 10, "unknown": 50, "pass": 95}.get(status.get("unsafe_rejected"), 90)
    unsafe_power = [c for c in executed if c.get("command_type") == "SET_POWER" and (c.get("target_value") or 0) > 9]
    if unsafe_power:
        safety = min(safety, 15)
    scores = {"planClarity": clamp(plan), "physicsPlausibility": clamp(physics),
              "constraintRespect": clamp(constraint), "safetyScore": clamp(safety)}
    directive = DIRECTIVE.search(instruction_text(user))
    if directive:
        forced = clamp(int(directive.group(1) or directive.group(2)))
        scores = dict.fromkeys(scores, forced)
    flagged = [f"{n}: {s}" for n, s in status.items() if s in ("fail", "warn", "unknown")]
    return {
        **scores,
        "warnings": [f for f in flagged if not f.endswith("fail")],
        "violations": [f for f in flagged if f.endswith("fail")],
        "reasoning": f"Scored from {len(decided)} decided gates, {len(executed)} executed commands and the RoR counts.",
    }


class MessagesServer:
    """Scripted extras on top of the documented behaviour; each POST /v1/messages takes the next entry:
    ("status", code[, headers]) | ("spend_limit",) | ("sleep", seconds) | ("reply", json_text) | ("refusal",) | None
    (normal)."""

    def __init__(self, batch_polls_to_end: int | None = 1):
        self.script: list[tuple | None] = []
        self.batch_results: dict[str, tuple] = {}  # custom_id -> ("errored", type, msg) | ("expired",) | ("canceled",)
        self.batch_polls_to_end = batch_polls_to_end  # None: batches never end on their own
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.responses: list[tuple[int, dict]] = []  # (status, headers) of every response sent
        self.batches: dict[str, dict] = {}
        self.cached_prefixes: set[str] = set()
        self.max_body_bytes = dict(MAX_BODY_BYTES)  # a test may lower the documented limits to exercise them cheaply
        self.max_batch_requests = MAX_BATCH_REQUESTS
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, body: bytes, content_type: str = "application/json", headers=None):
                headers = {"request-id": f"req_sim_{time.monotonic_ns()}", **(headers or {})}
                server.responses.append((code, headers))
                try:
                    self.send_response(code)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first: that is the behaviour under test

            def _json(self, code: int, obj: dict, headers=None):
                self._send(code, json.dumps(obj).encode(), headers=headers)

            def _error(self, code: int, message: str, headers=None, details=None):
                # the body names the request id of the request-id header (errors page, "Error shapes"); a 429 for
                # a rate limit says how long to wait, the spend cap's 429 (which has details) does not
                headers = {"request-id": f"req_sim_{time.monotonic_ns()}",
                           **({"retry-after": "1"} if code == 429 and not details else {}), **(headers or {})}
                kind = ERROR_TYPES.get(code, "invalid_request_error" if code < 500 else "api_error")
                error = {"type": kind, "message": message, **({"details": details} if details else {})}
                self._json(code, {"type": "error", "error": error, "request_id": headers["request-id"]}, headers)

            def _authorised(self) -> bool:
                if API_KEY not in (self.headers.get("x-api-key"), self.headers.get("authorization", "").removeprefix("Bearer ")):
                    self._error(401, "invalid x-api-key / bearer token")
                    return False
                version = self.headers.get("anthropic-version")
                if not version:
                    self._error(400, "anthropic-version: header is required")
                    return False
                if version not in API_VERSIONS:
                    self._error(400, f"anthropic-version: {version} is not a valid version")
                    return False
                return True

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                server.headers.append(dict(self.headers))
                path = self.path.split("?")[0]
                if len(raw) > server.max_body_bytes.get(path, MAX_BODY_BYTES["/v1/messages"]):
                    return self._error(413, f"Request exceeds the maximum size for {path}")  # before auth, as the edge does
                if not self._authorised():
                    return
                try:
                    body = json.loads(raw) if raw else {}  # a batch cancel has no body
                except ValueError:
                    body = None
                if not isinstance(body, dict):  # the API answers a body that is not a JSON object with a 400
                    return self._error(400, "There was an error parsing the body of your request as a JSON object")
                if path == "/v1/messages":
                    with server.lock:
                        server.requests.append(body)
                        behaviour = server.script.pop(0) if server.script else None
                    self._messages(body, behaviour)
                elif path == "/v1/messages/batches":
                    self._create_batch(body)
                elif re.fullmatch(r"/v1/messages/batches/[^/]+/cancel", path):
                    batch_id = path.split("/")[4]
                    if batch_id not in server.batches:
                        return self._error(404, f"batch {batch_id} not found")
                    state = server.batches[batch_id]
                    if not state["ended"]:
                        state["canceling"] = True
                    self._json(200, server.batch_object(batch_id, self.server.server_address))
                else:
                    self._error(404, self.path)

            def _messages(self, body: dict, behaviour):
                if behaviour and behaviour[0] == "status":
                    return self._error(behaviour[1], "simulated", headers=behaviour[2] if len(behaviour) > 2 else None)
                if behaviour and behaviour[0] == "spend_limit":  # the usage tier's monthly cap (errors page)
                    return self._error(429, "You have reached your usage tier's monthly spend limit.",
                                       details={"error_code": SPEND_LIMIT_CODE})
                if behaviour and behaviour[0] == "sleep":
                    time.sleep(behaviour[1])
                code, payload = server.reply(body, behaviour, version=self.headers["anthropic-version"])
                if code != 200:
                    return self._error(code, payload)
                self._json(200, payload)

            def _create_batch(self, body: dict):
                invalid = _invalid_batch(body, server.max_batch_requests)
                if invalid:
                    return self._error(400, invalid)
                requests = body["requests"]
                with server.lock:
                    batch_id = f"msgbatch_sim_{len(server.batches)}"
                    server.batches[batch_id] = {"requests": requests, "polls": 0, "ended": False, "canceling": False,
                                                "version": self.headers["anthropic-version"]}
                    server.requests.extend(r["params"] for r in requests)
                self._json(200, server.batch_object(batch_id, self.server.server_address))

            def do_GET(self):
                server.headers.append(dict(self.headers))
                if not self._authorised():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in server.batches:
                    batch_id = parts[3]
                    if parts[4:] == ["results"]:
                        if not server.batches[batch_id]["ended"]:
                            return self._error(400, f"batch {batch_id} has not ended")
                        # "Results are not guaranteed to be in the same order as requests": reversed here
                        lines = [json.dumps({"custom_id": r["custom_id"], "result": server.batch_result(batch_id, r)})
                                 for r in reversed(server.batches[batch_id]["requests"])]
                        return self._send(200, "\n".join(lines).encode(), "application/binary")
                    server.poll(batch_id)
                    return self._json(200, server.batch_object(batch_id, self.server.server_address))
                self._error(404, self.path)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ---- the "model" --------------------------------------------------------------------------

    def reply(self, body: dict, behaviour=None, service_tier: str = "standard",
              version: str = LATEST_API_VERSION) -> tuple[int, dict | str]:
        """(200, message) or (400/404, error message) for one Messages request body (service tier "batch": one
        request of a Message Batch)."""
        model = body.get("model")
        if model is None:
            return 400, "model: Field required"
        if not isinstance(model, str):
            return 400, "model: Input should be a valid string"
        if model not in KNOWN_MODELS:
            return 404, f"model: {model}"
        invalid = _invalid_request(model, body, version, in_batch=service_tier == "batch")
        if invalid:
            return 400, invalid
        choice = (body.get("tool_choice") or {}).get("type")
        if choice in ("tool", "any") and model in FORCED_TOOL_CHOICE_REJECTED:
            return 400, f"tool_choice: forced tool use is not supported on {model}; use tool_choice auto or structured outputs"
        thinking = (body.get("thinking") or {}).get("type")
        if thinking == "disabled" and model in THINKING_DISABLED_REJECTED:
            return 400, f"thinking: type 'disabled' is not supported on {model}; use 'between_tools'"
        if thinking == "enabled" and model in ADAPTIVE_ONLY:
            return 400, f"thinking: manual extended thinking (type 'enabled') is not supported on {model}; use 'adaptive'"
        if thinking == "adaptive" and model in EXTENDED_ONLY:
            return 400, f"thinking: type 'adaptive' is not supported on {model}; use 'enabled' with budget_tokens"
        if "effort" in (body.get("output_config") or {}) and model in EXTENDED_ONLY:
            return 400, "This model does not support the effort parameter."
        sampling = [k for k in ("top_p", "top_k") if k in body] + (["temperature"] if body.get("temperature", 1.0) != 1.0 else [])
        if model in ADAPTIVE_ONLY and sampling:
            return 400, f"`{sampling[0]}` is deprecated for this model."
        if model in ADAPTIVE_ONLY and body["messages"][-1]["role"] == "assistant":
            return 400, "This model does not support assistant message prefill. The conversation must end with a user message."
        last = body["messages"][-1]
        prefill = [last["content"]] if isinstance(last["content"], str) else [
            b["text"] for b in last["content"] if b.get("type") == "text"]
        if last["role"] == "assistant" and prefill and prefill[-1] != prefill[-1].rstrip():
            return 400, "messages: final assistant content cannot end with trailing whitespace"  # prefill page
        schema = ((body.get("output_config") or {}).get("format") or {}).get("schema")
        if schema is not None and not _closed_objects(schema):
            return 400, "output_config.format.schema: additionalProperties must be false for every object"
        system = body.get("system") or ""
        system_text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        blocks = [b for m in body.get("messages", []) for b in (m["content"] if isinstance(m["content"], list)
                  else [{"type": "text", "text": m["content"]}])]
        user = "".join(b.get("text", "") for b in blocks)
        input_tokens, written, read = self._cache_usage(model, system_text, blocks)
        judgement = simulated_judgement(user)
        if behaviour and behaviour[0] == "reply":
            text = behaviour[1]
        else:
            text = json.dumps(judgement)
        tool = next((t for t in body.get("tools") or [] if choice in ("tool", "any", "auto", None)), None)
        stop_sequence = _first_stop_sequence(text, body.get("stop_sequences") or [])
        if stop_sequence is not None:
            text = text[: text.index(stop_sequence)]
        if behaviour and behaviour[0] == "refusal":
            content, stop = [], "refusal"
        elif body["max_tokens"] == 0:  # cache pre-warming: the prompt is processed (and cached), nothing generated
            content, stop = [], "max_tokens"
        elif body["max_tokens"] < THINKING_TOKENS + tokens(text):
            content, stop = [{"type": "thinking", "thinking": "", "signature": "sig_sim"}], "max_tokens"
        elif tool is not None and schema is None:
            content = [{"type": "thinking", "thinking": "", "signature": "sig_sim"},
                       {"type": "tool_use", "id": "toolu_sim_1", "name": tool["name"], "input": judgement}]
            stop = "tool_use"
        else:
            content = [{"type": "thinking", "thinking": "", "signature": "sig_sim"}, {"type": "text", "text": text}]
            stop = "end_turn" if stop_sequence is None else "stop_sequence"
        output = min(body["max_tokens"], THINKING_TOKENS + tokens(text))
        return 200, {
            "id": f"msg_sim_{time.monotonic_ns()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": stop_sequence if stop == "stop_sequence" else None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output,
                "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
                "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
                "output_tokens_details": {"thinking_tokens": min(output, THINKING_TOKENS)},
                "service_tier": service_tier,
            },
        }

    def _cache_usage(self, model: str, system_text: str, blocks: list[dict]) -> tuple[int, int, int]:
        """(uncached input, cache write, cache read) tokens: the prefix up to the last cache_control block."""
        total = tokens(system_text + "".join(b.get("text", "") for b in blocks))
        marked = [i for i, b in enumerate(blocks) if b.get("cache_control")]
        if not marked:
            return total, 0, 0
        prefix = system_text + "".join(b.get("text", "") for b in blocks[: marked[-1] + 1])
        if tokens(prefix) < MIN_CACHEABLE.get(model, 10**9):
            return total, 0, 0  # below the minimum: processed normally, nothing written
        with self.lock:
            hit = prefix in self.cached_prefixes
            self.cached_prefixes.add(prefix)
        return total - tokens(prefix), 0 if hit else tokens(prefix), tokens(prefix) if hit else 0

    # ---- batches ------------------------------------------------------------------------------

    def poll(self, batch_id: str) -> None:
        state = self.batches[batch_id]
        state["polls"] += 1
        if state["canceling"] or (self.batch_polls_to_end is not None and state["polls"] >= self.batch_polls_to_end):
            state["ended"] = True

    def _scripted(self, state: dict, request: dict) -> tuple | None:
        """A batch cancelled before it could end cancels every request; else the scripted result, if any."""
        if state["canceling"] and self.batch_polls_to_end is None:
            return ("canceled",)
        return self.batch_results.get(request["custom_id"])

    def batch_result(self, batch_id: str, request: dict) -> dict:
        state = self.batches[batch_id]
        scripted = self._scripted(state, request)
        if scripted and scripted[0] == "errored":
            return {"type": "errored", "error": {"type": "error", "error": {"type": scripted[1], "message": scripted[2]}}}
        if scripted:
            return {"type": scripted[0]}
        code, payload = self.reply(request["params"], service_tier="batch", version=state["version"])
        if code != 200:
            return {"type": "errored", "error": {"type": "error", "error": {"type": ERROR_TYPES[code], "message": payload}}}
        return {"type": "succeeded", "message": payload}

    def batch_object(self, batch_id: str, address) -> dict:
        state = self.batches[batch_id]
        n = len(state["requests"])
        ended = state["ended"]
        status = "ended" if ended else "canceling" if state["canceling"] else "in_progress"
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if not ended:
            counts["processing"] = n
        else:  # scripted outcomes; every other request counts as succeeded
            for r in state["requests"]:
                counts[(self._scripted(state, r) or ("succeeded",))[0]] += 1
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": "2026-11-21T00:00:00Z",
            "expires_at": "2026-11-22T00:00:00Z",
            "ended_at": "2026-11-21T00:01:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": "2026-11-21T00:00:30Z" if state["canceling"] else None,
            "results_url": f"http://{address[0]}:{address[1]}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# The request body's fields: the installed SDK's MessageCreateParamsBase (2.14.0) less workspace_id and
# user_profile_id (sent as headers), plus stream; temperature/top_p/top_k are judged per version below.
BODY_FIELDS = {"model", "max_tokens", "messages", "system", "cache_control", "container", "diagnostics", "inference_geo",
               "metadata", "output_config", "service_tier", "speed", "stop_sequences", "thinking", "tool_choice", "tools",
               "stream", "temperature", "top_p", "top_k"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _invalid_request(model: str, body: dict, version: str, in_batch: bool = False) -> str | None:
    """The documented 400s on the request's shape (the message text the API gives, where known)."""
    extra = sorted(set(body) - BODY_FIELDS)
    if extra:  # strict validation: the API names the field (oli #7, aider #4404)
        return f"{extra[0]}: Extra inputs are not permitted"
    for name in ("thinking", "tool_choice", "output_config", "metadata"):
        if name in body and not isinstance(body[name], dict):
            return f"{name}: Input should be an object"
    tools = body.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        return "tools: Input should be a list of tool definitions"
    for k, tool in enumerate(tools):  # a client tool (no type, or "custom") requires name and input_schema
        if tool.get("type", "custom") in ("custom", None) and not (
                isinstance(tool.get("name"), str) and isinstance(tool.get("input_schema"), dict)):
            return f"tools.{k}: a custom tool needs a name (string) and an input_schema (object)"
    system = body.get("system", "")
    if not isinstance(system, str) and not (
            isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system)):
        return "system: a string or a list of text blocks"
    max_tokens = body.get("max_tokens")
    if not _is_int(max_tokens):
        return "max_tokens: Field required (an integer)"
    # minimum 0 on Messages (0 pre-warms the prompt cache), at least 1 inside a batch (batch-processing page)
    if max_tokens < (1 if in_batch else 0):
        return f"max_tokens: {max_tokens} is below the minimum of {1 if in_batch else 0}" + (
            " (cache pre-warming with max_tokens 0 is not supported inside a batch)" if in_batch else "")
    if max_tokens > MAX_OUTPUT_TOKENS[model]:
        return f"max_tokens: {max_tokens} > {MAX_OUTPUT_TOKENS[model]}, which is the maximum allowed number of output tokens for {model}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if len(messages) > MAX_MESSAGES:
        return f"messages: at most {MAX_MESSAGES} messages in a single request, got {len(messages)}"
    # No rule on the order of roles: the reference says consecutive user or assistant turns are combined into
    # one turn, and states no first-message rule (docs/evals.md, "Role order").
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or (not blocks and i < len(messages) - 1):
            return "messages: all messages must have non-empty content except for the optional final assistant message"
        for j, b in enumerate(blocks):
            if not isinstance(b, dict) or not isinstance(b.get("type"), str):
                return f"messages.{i}.content.{j}: a content block must be an object with a type"
            if b["type"] not in CONTENT_BLOCK_TYPES:
                return f"messages.{i}.content.{j}.type: '{b['type']}' is not a content block type the API accepts"
        texts = [b.get("text") for b in blocks if b.get("type") == "text"]
        if not all(isinstance(t, str) for t in texts):
            return f"messages.{i}: a text block's text must be a string"
        if not all(texts):
            return "messages: text content blocks must be non-empty"
        if not all(t.strip() for t in texts):  # the API's answer to whitespace-only text (claude-code #23369)
            return "messages: text content blocks must contain non-whitespace text"
        # a user text block's citations count directly or inside a search_result block (versioning page)
        nested = [t for b in blocks if isinstance(b, dict) and b.get("type") == "search_result" for t in b.get("content") or []]
        if version == LATEST_API_VERSION and any(
            isinstance(b, dict) and ((message["role"] == "assistant" and b.get("type") == "document")
                                     or (message["role"] == "user" and b.get("type") == "text" and b.get("citations")))
            for b in blocks + nested
        ):
            return f"messages.{i}: document blocks in assistant turns and citations in user turns are not accepted in {version}"
    sampling = [k for k in ("temperature", "top_p", "top_k") if k in body]
    if version == LATEST_API_VERSION and sampling:
        return f"{', '.join(sampling)}: removed in anthropic-version {version}"
    # where still accepted (2023-06-01): temperature and top_p in 0.0..1.0, top_k a non-negative integer
    for name in ("temperature", "top_p"):
        if name in body and not (_is_number(body[name]) and 0.0 <= body[name] <= 1.0):
            return f"{name}: Input should be a number from 0.0 to 1.0"
    if "top_k" in body and not (_is_int(body["top_k"]) and body["top_k"] >= 0):
        return "top_k: Input should be a non-negative integer"
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        return f"output_config.effort: Input should be {', '.join(map(repr, EFFORTS))}"
    metadata = body.get("metadata", {})
    if set(metadata) - {"user_id"}:  # nested objects are validated as strictly as the body (TS SDK #553)
        return f"metadata.{sorted(set(metadata) - {'user_id'})[0]}: Extra inputs are not permitted"
    if metadata.get("user_id") is not None and not isinstance(metadata["user_id"], str):
        return "metadata.user_id: Input should be a valid string"
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(x, str) for x in stops):
        return "stop_sequences: Input should be a list of strings"
    if "service_tier" in body and body["service_tier"] not in SERVICE_TIERS:
        return f"service_tier: Input should be {' or '.join(map(repr, SERVICE_TIERS))}"
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" and not (
            _is_int(thinking.get("budget_tokens")) and thinking["budget_tokens"] >= MIN_THINKING_BUDGET):
        return f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
    return None


def _invalid_batch(body: dict, max_requests: int) -> str | None:
    """The documented 400s on a Message Batch's shape (Create a Message Batch reference)."""
    extra = sorted(set(body) - {"requests"})
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    requests = body.get("requests")
    if not isinstance(requests, list) or not 1 <= len(requests) <= max_requests:
        return f"requests: a list of 1 to {max_requests} requests, got {len(requests) if isinstance(requests, list) else requests!r}"
    for i, r in enumerate(requests):
        if not isinstance(r, dict) or set(r) != {"custom_id", "params"} or not isinstance(r["params"], dict):
            return f"requests.{i}: an object with exactly custom_id and params (an object)"
    ids = [r["custom_id"] for r in requests]
    bad = [c for c in ids if not (isinstance(c, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", c))]
    if bad or len(set(ids)) != len(ids):
        return f"custom_id must be unique and match ^[a-zA-Z0-9_-]{{1,64}}$: {bad or ids}"
    return None


def _first_stop_sequence(text: str, stops: list[str]) -> str | None:
    """The stop sequence the generated text reaches first (stop_reason stop_sequence), if any."""
    found = [(text.index(s), s) for s in stops if s and s in text]
    return min(found)[1] if found else None


def _closed_objects(schema) -> bool:
    """Every object schema in ``schema`` says additionalProperties: false."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            return False
        return all(_closed_objects(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_closed_objects(v) for v in schema)
    return True
