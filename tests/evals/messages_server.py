"""A local HTTP server speaking the Anthropic Messages API wire format (the test double at the HTTP boundary).

It answers as the documented API does (facts and sources: docs/evals.md, "API facts"):
- request shape: a body that is not a JSON object, no or empty ``messages``, an empty text block, ``max_tokens``
  missing or above the model's max output, an ``output_config.effort`` outside low..max, manual extended
  thinking or an assistant prefill on a 5.x model, adaptive thinking or an effort on Haiku 4.5, temperature/top_p/top_k (any model under
  ``anthropic-version`` 2026-10-21, which this SDK sends; non-default values on every 5.x model under 2023-06-01)
  are 400 ``invalid_request_error``, and so are a missing ``model`` and a content block that is not an object
  with a type, a ``system`` that is neither a string nor a list of text blocks, and a top-level field the API does not know ("Extra inputs are not permitted"); an unknown model is 404;
- error bodies: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the errors page's type per status;
  a 429 carries ``retry-after`` (seconds) unless the script gives its own headers' values;
- auth: a missing or wrong key (``x-api-key``, or ``Authorization: Bearer`` as this SDK sends it) is 401 ``authentication_error``; a missing or unknown ``anthropic-version`` is 400;
- every response carries a ``request-id`` header;
- forced tool use (``tool_choice`` ``tool``/``any``) is a 400 ``invalid_request_error`` on the models whose
  docs list it as a breaking change (``FORCED_TOOL_CHOICE_REJECTED``); ``thinking: disabled`` is a 400 on
  Claude Sonnet 5.5, Opus 5.5 and Fable 5.1; an ``output_config.format`` object schema without ``additionalProperties: false`` is a 400;
- usage counts cache writes and reads: a block with ``cache_control`` whose prefix reaches the model's minimum
  is written on first sight (``cache_creation_input_tokens``) and read afterwards (``cache_read_input_tokens``);
- ``stop_reason`` follows the reply: ``end_turn`` for text/JSON, ``tool_use`` for a tool call, ``max_tokens``
  when ``max_tokens`` is too small for thinking plus reply, ``refusal`` when scripted;
- Message Batches: create, retrieve, cancel, results as JSONL with succeeded / errored / expired / canceled.

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
# The errors page lists 400, 401, 403, 404, 413, 429, 500, 529; another 4xx may come as invalid_request_error,
# another 5xx is taken here as api_error.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
               408: "timeout_error", 409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}
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
    ("status", code[, headers]) | ("sleep", seconds) | ("reply", json_text) | ("refusal",) | None (normal)."""

    def __init__(self, batch_polls_to_end: int | None = 1):
        self.script: list[tuple | None] = []
        self.batch_results: dict[str, tuple] = {}  # custom_id -> ("errored", type, msg) | ("expired",) | ("canceled",)
        self.batch_polls_to_end = batch_polls_to_end  # None: batches never end on their own
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.responses: list[tuple[int, dict]] = []  # (status, headers) of every response sent
        self.batches: dict[str, dict] = {}
        self.cached_prefixes: set[str] = set()
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

            def _error(self, code: int, message: str, headers=None):
                # the body names the request id of the request-id header (errors page, "Error shapes")
                headers = {"request-id": f"req_sim_{time.monotonic_ns()}",
                           **({"retry-after": "1"} if code == 429 else {}), **(headers or {})}  # rate-limits page
                kind = ERROR_TYPES.get(code, "invalid_request_error" if code < 500 else "api_error")
                self._json(code, {"type": "error", "error": {"type": kind, "message": message},
                                  "request_id": headers["request-id"]}, headers)

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
                if not self._authorised():
                    return
                try:
                    body = json.loads(raw) if raw else {}  # a batch cancel has no body
                except ValueError:
                    body = None
                if not isinstance(body, dict):  # the API answers a body that is not a JSON object with a 400
                    return self._error(400, "There was an error parsing the body of your request as a JSON object")
                path = self.path.split("?")[0]
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
                if behaviour and behaviour[0] == "sleep":
                    time.sleep(behaviour[1])
                code, payload = server.reply(body, behaviour, version=self.headers["anthropic-version"])
                if code != 200:
                    return self._error(code, payload)
                self._json(200, payload)

            def _create_batch(self, body: dict):
                requests = body.get("requests") or []
                ids = [r.get("custom_id", "") for r in requests]
                bad = [c for c in ids if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", c)]
                if bad or len(set(ids)) != len(ids):
                    return self._error(400, f"custom_id must be unique and match ^[a-zA-Z0-9_-]{{1,64}}$: {bad or ids}")
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
                        lines = [json.dumps({"custom_id": r["custom_id"], "result": server.batch_result(batch_id, r)})
                                 for r in server.batches[batch_id]["requests"]]
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
        """(200, message) or (400/404, error message) for one Messages request body."""
        model = body.get("model")
        if model is None:
            return 400, "model: Field required"
        if model not in KNOWN_MODELS:
            return 404, f"model: {model}"
        invalid = _invalid_request(model, body, version)
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
        if behaviour and behaviour[0] == "refusal":
            content, stop = [], "refusal"
        elif body["max_tokens"] < THINKING_TOKENS + tokens(text):
            content, stop = [{"type": "thinking", "thinking": "", "signature": "sig_sim"}], "max_tokens"
        elif tool is not None and schema is None:
            content = [{"type": "thinking", "thinking": "", "signature": "sig_sim"},
                       {"type": "tool_use", "id": "toolu_sim_1", "name": tool["name"], "input": judgement}]
            stop = "tool_use"
        else:
            content = [{"type": "thinking", "thinking": "", "signature": "sig_sim"}, {"type": "text", "text": text}]
            stop = "end_turn"
        output = min(body["max_tokens"], THINKING_TOKENS + tokens(text))
        return 200, {
            "id": f"msg_sim_{time.monotonic_ns()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
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


def _invalid_request(model: str, body: dict, version: str) -> str | None:
    """The documented 400s on the request's shape (the message text the API gives, where known)."""
    extra = sorted(set(body) - BODY_FIELDS)
    if extra:  # strict validation: the API names the field (oli #7, aider #4404)
        return f"{extra[0]}: Extra inputs are not permitted"
    system = body.get("system", "")
    if not isinstance(system, str) and not (
            isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system)):
        return "system: a string or a list of text blocks"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: field required"
    if max_tokens > MAX_OUTPUT_TOKENS[model]:
        return f"max_tokens: {max_tokens} > {MAX_OUTPUT_TOKENS[model]}, which is the maximum allowed number of output tokens for {model}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
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
        if any(b.get("type") == "text" and not b.get("text") for b in blocks if isinstance(b, dict)):
            return "messages: text content blocks must be non-empty"
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
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        return f"output_config.effort: Input should be {', '.join(map(repr, EFFORTS))}"
    return None


def _closed_objects(schema) -> bool:
    """Every object schema in ``schema`` says additionalProperties: false."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            return False
        return all(_closed_objects(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_closed_objects(v) for v in schema)
    return True
