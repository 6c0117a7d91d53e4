"""What the telemetry domain publishes to other domains: its warehouse tables.

Each table is also an asset; its key is the table name split at the dot (``telemetry/sessions``).
"""

SESSIONS = "telemetry.sessions"
POINTS = "telemetry.points"
ROAST_METRICS = "telemetry.roast_metrics"
INGEST_ERRORS = "telemetry.ingest_errors"
LANDING_FOLDER = "telemetry.landing_folder"  # an asset (the input folders), not a table
