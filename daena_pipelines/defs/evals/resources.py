"""The LM judge as a Dagster resource: configuration plus an Anthropic client built on demand."""
from __future__ import annotations

import os
from dataclasses import fields
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from daena_pipelines.evals.judge import JudgeSettings, check_endpoint

if TYPE_CHECKING:  # imported when a client is built (evals/judge.py says why)
    import anthropic

DEFAULTS = JudgeSettings()  # the judge's defaults, written once (evals/judge.py)
NO_API_KEY = "no API key"  # how a not_judged reason for a missing key begins (checks.judge_scores_valid names its fix)


class AnthropicJudgeResource(dg.ConfigurableResource):
    """Claude via the official SDK. The key is read from the environment at call time, never stored
    in run config nor logged; without it the judge records rows as ``not_judged``."""

    api_key_env_var: str = Field(default="ANTHROPIC_API_KEY", description="Name of the env var holding the key.")
    base_url: str | None = Field(
        default=DEFAULTS.base_url,
        description="None = the official API; any other URL is labelled 'simulator'. Must be https:// "
        "or http:// to a loopback address.",
    )
    model: str = Field(default=DEFAULTS.model, description="Claude model id the judge calls.")
    max_tokens: int = Field(default=DEFAULTS.max_tokens, ge=1, description="Thinking and reply together; at least 1.")
    effort: str = Field(default=DEFAULTS.effort, description="output_config.effort: low | medium | high | xhigh | max.")
    samples: int = Field(default=DEFAULTS.samples, ge=1, description="Judgements per session; >1 reports mean/median/mode and spread.")
    timeout_s: float = Field(default=120.0, description="Per-request HTTP timeout, seconds.")
    max_retries: int = Field(default=DEFAULTS.max_retries, ge=0, description="The SDK's own retry policy, this many retries.")
    batch_mode: bool = Field(default=DEFAULTS.batch_mode, description="Send a run's requests as a Message Batch.")
    batch_poll_s: float = Field(default=DEFAULTS.batch_poll_s, description="Seconds between polls of a Message Batch.")
    batch_max_wait_s: float = Field(default=DEFAULTS.batch_max_wait_s, description="Then the batch is cancelled, rows not_judged.")

    def effective_base_url(self) -> str | None:
        """The SDK falls back to ANTHROPIC_BASE_URL by itself; resolve it here so the source label is right."""
        return self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None

    def settings(self) -> JudgeSettings:
        values = {f.name: getattr(self, f.name) for f in fields(JudgeSettings) if f.name != "base_url"}
        return JudgeSettings(base_url=self.effective_base_url(), **values)

    def client(self) -> tuple[anthropic.Anthropic | None, str]:
        """(client, "") or (None, why not). Raises judge.InsecureEndpoint before the key leaves the process."""
        base_url = self.effective_base_url()
        check_endpoint(base_url)
        api_key = os.environ.get(self.api_key_env_var, "").strip()
        if not api_key:
            return None, f"{NO_API_KEY}: environment variable {self.api_key_env_var} is not set"
        import anthropic

        client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=self.timeout_s, max_retries=self.max_retries
        )
        return client, ""


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"anthropic_judge": AnthropicJudgeResource()})
