"""The LM judge as a Dagster resource: configuration plus an Anthropic client built on demand."""
from __future__ import annotations

import os

import anthropic
import dagster as dg
from pydantic import Field

from daena_pipelines.evals.judge import DEFAULT_MODEL, JudgeSettings, check_endpoint


class AnthropicJudgeResource(dg.ConfigurableResource):
    """Claude via the official SDK. The key is read from the environment at call time, never stored
    in run config nor logged; without it the judge records rows as ``not_judged``."""

    api_key_env_var: str = Field(default="ANTHROPIC_API_KEY", description="Name of the env var holding the key.")
    base_url: str | None = Field(
        default=None,
        description="None = the official API; any other URL is labelled 'simulator'. Must be https:// "
        "or http:// to a loopback address.",
    )
    model: str = DEFAULT_MODEL
    max_tokens: int = Field(default=16_000, description="Thinking and reply together (adaptive thinking).")
    effort: str = Field(default="medium", description="output_config.effort: low | medium | high | xhigh | max.")
    samples: int = Field(default=1, ge=1, description="Judgements per session; >1 reports mean/median/mode and spread.")
    timeout_s: float = Field(default=120.0, description="Per-request HTTP timeout.")
    max_retries: int = Field(default=4, ge=0, description="The SDK's own retry policy, this many retries.")
    batch_mode: bool = Field(default=False, description="Send a run's requests as a Message Batch.")
    batch_poll_s: float = 30.0
    batch_max_wait_s: float = Field(default=3600.0, description="Then the batch is cancelled, rows not_judged.")

    def effective_base_url(self) -> str | None:
        """The SDK falls back to ANTHROPIC_BASE_URL by itself; resolve it here so the source label is right."""
        return self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None

    def settings(self) -> JudgeSettings:
        return JudgeSettings(
            model=self.model,
            base_url=self.effective_base_url(),
            max_tokens=self.max_tokens,
            effort=self.effort,
            samples=self.samples,
            max_retries=self.max_retries,
            batch_mode=self.batch_mode,
            batch_poll_s=self.batch_poll_s,
            batch_max_wait_s=self.batch_max_wait_s,
        )

    def client(self) -> tuple[anthropic.Anthropic | None, str]:
        """(client, "") or (None, why not). Raises judge.InsecureEndpoint before the key leaves the process."""
        base_url = self.effective_base_url()
        check_endpoint(base_url)
        api_key = os.environ.get(self.api_key_env_var, "").strip()
        if not api_key:
            return None, f"no API key: environment variable {self.api_key_env_var} is not set"
        client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=self.timeout_s, max_retries=self.max_retries
        )
        return client, ""


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"anthropic_judge": AnthropicJudgeResource()})
