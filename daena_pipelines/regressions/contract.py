"""What the regressions domain publishes to other domains: its warehouse table."""

FINDINGS = "regressions.findings"
GOLDEN = "regressions.golden"  # an asset (the golden/ folder), not a table
