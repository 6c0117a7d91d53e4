"""What the commands domain publishes to other domains: its warehouse tables.

A table's asset key is its name split at the dot (``commands/proposals``).
"""

PROPOSALS = "commands.proposals"
AUDIT_LOG = "commands.audit_log"
INVALID_TRANSITIONS = "commands.invalid_transitions"
INGEST_ERRORS = "commands.ingest_errors"
OUTCOME_METRICS = "commands.outcome_metrics"
ALERTS = "commands.alerts"
