"""What the device domain publishes to other domains: its warehouse tables and the recording asset.

A table's asset key is its name split at the dot (``device/command_queue``).
"""

COMMAND_QUEUE = "device.command_queue"
COMMAND_EXECUTIONS = "device.command_executions"
SIDECAR_RECORDING = "device.sidecar_recording"  # an asset (a recording file), not a table
