"""What the device domain publishes to other domains: its warehouse tables and the recording asset.

A table's asset key is its name split at the dot (``device/command_queue``).
"""

COMMAND_QUEUE = "device.command_queue"
COMMAND_EXECUTIONS = "device.command_executions"
SIDECAR_RECORDING = "device.sidecar_recording"  # an asset (a recording file), not a table

# The Bullet R1's level ranges (protocol.py, docs/device.md), as the sidecar enforces them: what
# commands' alerts and evals' golden cases check proposed levels against.
HEATER_RANGE = (0, 9)
FAN_RANGE = (1, 12)
DRUM_RANGE = (1, 9)

# The sidecar's timing defaults other domains reckon with (seconds): every command ends within its command
# timeout (safety.SafetyLimits.command_timeout_s), and what it reports reaches the warehouse on a later
# warehouse cycle (sidecar.SidecarConfig.queue_poll_interval_s). commands' EXECUTION_STUCK alert derives from both.
COMMAND_TIMEOUT_S = 20.0
WAREHOUSE_CYCLE_S = 2.0
# The longest command timeout the sidecar accepts: longer than a whole roast, so no command outlives one. Without a
# bound, a timeout of 1e9 s kept a dead sidecar's command EXECUTING with no EXECUTION_STUCK alert, ever.
MAX_COMMAND_TIMEOUT_S = 1200.0

# What the sidecar did with each proposal; commands folds these rows into its lifecycles. command_timeout_s: the
# command timeout the execution ran with (SafetyLimits.command_timeout_s, seconds; device migration 5, NULL before).
COMMAND_EXECUTIONS_COLUMNS = (
    "execution_id", "proposal_id", "machine_id", "session_id", "recording_id", "command_type", "target_value",
    "status", "started_at", "completed_at", "session_t_s", "observed_value", "error", "source", "command_timeout_s",
)

# An approval the sidecar closed without running it: its device.command_queue row gets this status,
# closed_at, closed_reason and closed_source (real | simulator); commands folds these into its
# lifecycles as APPROVED -> EXPIRED.
EXPIRED = "EXPIRED"
EXPIRED_APPROVAL_COLUMNS = (
    "proposal_id", "machine_id", "command_type", "target_value", "target_unit", "closed_at", "closed_reason", "closed_source",
)
