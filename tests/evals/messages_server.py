"""A local HTTP server speaking the Anthropic Messages API wire format (the test double at the HTTP boundary).

Scripted: each POST /v1/messages takes the next behaviour from ``script`` (default: a valid
judgement). Also serves the Message Batches endpoints (create, retrieve, results as JSONL).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from daena_pipelines.evals.judge import TOOL_NAME

GOOD_JUDGEMENT = {
    "planClarity": 80,
    "physicsPlausibility": 90,
    "constraintRespect": 70,
    "safetyScore": 95,
    "warnings": ["drop BT near the upper tolerance"],
    "violations": [],
    "reasoning": "Curve is smooth; development on target.",
}
ERROR_TYPES = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error", 400: "invalid_request_error"}


def message(model: str, tool_input, request_chars: int, tool_name: str = TOOL_NAME) -> dict:
    return {
        "id": f"msg_sim_{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "tool_use", "id": "toolu_sim_1", "name": tool_name, "input": tool_input}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": request_chars // 4,
            "output_tokens": 120,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


class MessagesServer:
    """Behaviours: ("ok", tool_input) | ("status", code[, retry_after]) | ("sleep", seconds) | ("wrong_tool",)."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.batches: dict[str, dict] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, body: bytes, content_type: str = "application/json", headers=None):
                try:
                    self.send_response(code)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first: that is the behaviour under test

            def _json(self, code: int, obj: dict, headers=None):
                self._send(code, json.dumps(obj).encode(), headers=headers)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                server.headers.append(dict(self.headers))
                if self.path == "/v1/messages":
                    server.requests.append(body)
                    behaviour = server.script.pop(0) if server.script else ("ok", GOOD_JUDGEMENT)
                    self._respond(behaviour, body, len(raw))
                elif self.path == "/v1/messages/batches":
                    batch_id = f"msgbatch_sim_{len(server.batches)}"
                    server.batches[batch_id] = {"requests": body["requests"], "polls": 0}
                    server.requests.extend(r["params"] for r in body["requests"])
                    self._json(200, server.batch_object(batch_id, self.server.server_address))
                else:
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in server.batches:
                    batch_id = parts[3]
                    if parts[4:] == ["results"]:
                        lines = [
                            json.dumps({"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": message(
                                r["params"]["model"], GOOD_JUDGEMENT, len(json.dumps(r["params"])))}})
                            for r in server.batches[batch_id]["requests"]
                        ]
                        self._send(200, "\n".join(lines).encode(), "application/binary")
                        return
                    server.batches[batch_id]["polls"] += 1
                    self._json(200, server.batch_object(batch_id, self.server.server_address))
                    return
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

            def _respond(self, behaviour, body, request_chars):
                kind = behaviour[0]
                if kind == "sleep":
                    time.sleep(behaviour[1])
                    return self._json(200, message(body["model"], GOOD_JUDGEMENT, request_chars))
                if kind == "status":
                    code = behaviour[1]
                    error = {"type": "error", "error": {"type": ERROR_TYPES.get(code, "api_error"), "message": "simulated"}}
                    return self._json(code, error, headers={"retry-after": behaviour[2] if len(behaviour) > 2 else "0"})
                if kind == "wrong_tool":
                    return self._json(200, message(body["model"], GOOD_JUDGEMENT, request_chars, tool_name="other"))
                return self._json(200, message(body["model"], behaviour[1], request_chars))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def batch_object(self, batch_id: str, address) -> dict:
        state = self.batches[batch_id]
        ended = state["polls"] >= 1  # in progress when created, ended from the first poll on
        n = len(state["requests"])
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else n, "succeeded": n if ended else 0,
                               "errored": 0, "canceled": 0, "expired": 0},
            "created_at": "2026-11-21T00:00:00Z",
            "expires_at": "2026-11-22T00:00:00Z",
            "ended_at": "2026-11-21T00:01:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"http://{address[0]}:{address[1]}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

