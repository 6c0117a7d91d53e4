"""What the commands domain publishes to other domains: its warehouse tables.

A table's asset key is its name split at the dot (``commands/proposals``).
"""

# The values of commands.proposals.status (lifecycle: model.TRANSITIONS, docs/commands.md). EXPIRED:
# approved, then closed unexecuted by the device sidecar as stale (expired_at, expiry_reason).
PROPOSAL_STATUSES = (
    "PROPOSED", "PENDING_APPROVAL", "APPROVED", "REJECTED", "EXECUTING", "COMPLETED", "FAILED", "ABORTED", "TIMEOUT",
    "EXPIRED",
)

PROPOSALS = "commands.proposals"
AUDIT_LOG = "commands.audit_log"
INVALID_TRANSITIONS = "commands.invalid_transitions"
INGEST_ERRORS = "commands.ingest_errors"
OUTCOME_METRICS = "commands.outcome_metrics"
ALERTS = "commands.alerts"
