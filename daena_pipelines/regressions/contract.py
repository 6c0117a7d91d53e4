"""What the regressions domain publishes to other domains: its warehouse table."""

FINDINGS = "regressions.findings"
