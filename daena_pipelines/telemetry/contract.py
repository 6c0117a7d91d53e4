"""What the telemetry domain publishes to other domains: its warehouse tables and their columns.

Each table is also an asset; its key is the table name split at the dot (``telemetry/sessions``).
"""

SESSIONS = "telemetry.sessions"
POINTS = "telemetry.points"
POINTS_WITH_EXTRA = "telemetry.points_with_extra"  # a view, not an asset: points with `extra` as a MAP(channel, value)
ROAST_METRICS = "telemetry.roast_metrics"
INGEST_ERRORS = "telemetry.ingest_errors"
LANDING_FOLDER = "telemetry.landing_folder"  # an asset (the input folders), not a table

# The sidecar recording format (docs/device.md): the device writes it, telemetry reads it.
SIDECAR_FORMAT = "daena-sidecar"  # the header's "format"
SIDECAR_VERSION = 1  # the header's "version"
SIDECAR_SUFFIX = ".sidecar.jsonl"

# The artisan_* columns of roast_metrics: Artisan's own values, our column -> its `computed` key.
ARTISAN_COLUMNS = {
    "artisan_charge_bt_c": "CHARGE_BT",
    "artisan_tp_s": "TP_time",
    "artisan_tp_bt_c": "TP_BT",
    "artisan_dry_end_s": "DRY_time",
    "artisan_dry_bt_c": "DRY_BT",
    "artisan_fcs_s": "FCs_time",
    "artisan_fcs_bt_c": "FCs_BT",
    "artisan_fce_s": "FCe_time",
    "artisan_fce_bt_c": "FCe_BT",
    "artisan_drop_s": "DROP_time",
    "artisan_drop_bt_c": "DROP_BT",
    "artisan_met_c": "MET",
    "artisan_total_s": "totaltime",
    "artisan_drying_s": "dryphasetime",
    "artisan_maillard_s": "midphasetime",
    "artisan_development_s": "finishphasetime",
    "artisan_dry_phase_ror_c_per_min": "dry_phase_ror",
    "artisan_mid_phase_ror_c_per_min": "mid_phase_ror",
    "artisan_finish_phase_ror_c_per_min": "finish_phase_ror",
    "artisan_total_ror_c_per_min": "total_ror",
    "artisan_dry_phase_delta_c": "dry_phase_delta_temp",
    "artisan_mid_phase_delta_c": "mid_phase_delta_temp",
    "artisan_finish_phase_delta_c": "finish_phase_delta_temp",
    "artisan_auc_c_min": "AUC",
    "artisan_dry_phase_auc_c_min": "dry_phase_AUC",
    "artisan_mid_phase_auc_c_min": "mid_phase_AUC",
    "artisan_finish_phase_auc_c_min": "finish_phase_AUC",
    "artisan_ror_at_fcs_c_per_min": "fcs_ror",
    "artisan_weight_loss_pct": "weight_loss",
}

# the artisan_* columns of the first schema version
V1_ARTISAN_COLUMNS = (
    "artisan_charge_bt_c", "artisan_tp_s", "artisan_tp_bt_c", "artisan_dry_end_s", "artisan_fcs_s", "artisan_fcs_bt_c",
    "artisan_fce_s", "artisan_drop_s", "artisan_drop_bt_c", "artisan_total_s", "artisan_drying_s", "artisan_maillard_s",
    "artisan_development_s", "artisan_auc_c_min", "artisan_ror_at_fcs_c_per_min", "artisan_weight_loss_pct",
)

# telemetry.roast_metrics: column -> SQL type, by the schema version (migration) that added it.
# Every metric metrics.roast_metrics() returns has its column here (tests/telemetry/test_metrics.py).
# Roast event times, in seconds from CHARGE (the other ``*_s`` columns are durations); Artisan's own
# (``artisan_*``) and the golden cases' targets (``target_*``) carry the same names.
EVENT_TIME_COLUMNS = ("tp_s", "dry_end_s", "fcs_s", "fce_s", "drop_s", "total_s")

# A new metric is one line with the next version (SCHEMA_VERSION + 1), e.g. ``6: {"bt_span_c": "DOUBLE"},``:
# store.py derives the migration that adds the column to existing warehouses, migrations.py the version.
METRIC_COLUMNS_BY_VERSION = {
    1: {
        "charge_bt_c": "DOUBLE", "tp_s": "DOUBLE", "tp_bt_c": "DOUBLE", "dry_end_s": "DOUBLE", "fcs_s": "DOUBLE",
        "fcs_bt_c": "DOUBLE", "fce_s": "DOUBLE", "drop_s": "DOUBLE", "drop_bt_c": "DOUBLE", "total_s": "DOUBLE",
        "drying_s": "DOUBLE", "maillard_s": "DOUBLE", "development_s": "DOUBLE", "dtr_pct": "DOUBLE",
        "auc_c_min": "DOUBLE", "auc_base_c": "DOUBLE", "auc_begin": "VARCHAR", "max_ror_c_per_min": "DOUBLE",
        "ror_at_fcs_c_per_min": "DOUBLE", "crash": "BOOLEAN", "flick": "BOOLEAN", "ror_spikes": "INTEGER",
        "ror_crashes": "INTEGER", "weight_loss_pct": "DOUBLE",
        **{column: "DOUBLE" for column in V1_ARTISAN_COLUMNS},
        "artisan_dtr_pct": "DOUBLE",
    },
    2: {
        "charge_inferred": "BOOLEAN", "dry_end_inferred": "BOOLEAN", "dry_bt_c": "DOUBLE", "fce_bt_c": "DOUBLE",
        "met_c": "DOUBLE", "dry_phase_ror_c_per_min": "DOUBLE", "mid_phase_ror_c_per_min": "DOUBLE",
        "finish_phase_ror_c_per_min": "DOUBLE", "total_ror_c_per_min": "DOUBLE", "dry_phase_delta_c": "DOUBLE",
        "mid_phase_delta_c": "DOUBLE", "finish_phase_delta_c": "DOUBLE", "dry_phase_auc_c_min": "DOUBLE",
        "mid_phase_auc_c_min": "DOUBLE", "finish_phase_auc_c_min": "DOUBLE", "metrics_version": "INTEGER",
        **{column: "DOUBLE" for column in ARTISAN_COLUMNS if column not in V1_ARTISAN_COLUMNS},
    },
}
METRIC_COLUMNS = {column: sql_type for added in METRIC_COLUMNS_BY_VERSION.values() for column, sql_type in added.items()}

# Schema versions that changed no metric column (store.MIGRATIONS spells them out): 3 and 4 made
# the points' extra map sessions.extra_channels (the names) and points.extra_values (a list per
# sample); 5 gives the map back to readers as the view POINTS_WITH_EXTRA.
LAYOUT_VERSIONS = (3, 4, 5)
SCHEMA_VERSION = max(*LAYOUT_VERSIONS, *METRIC_COLUMNS_BY_VERSION)  # the newest migration of the telemetry tables
