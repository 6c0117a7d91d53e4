"""``commands.alerts``: every alert rule as DuckDB SQL over proposals and outcome metrics.

Thresholds live in ``AlertThresholds`` (defaults documented in docs/commands.md); the Dagster
asset exposes the same fields as run config.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb

from daena_pipelines.commands.metrics import ENTERED_AT, recorded_as_of
from daena_pipelines.commands.model import RAN_UNAPPROVED
from daena_pipelines.db import serialize_writes
from daena_pipelines.device import contract as device
from daena_pipelines.device.contract import DRUM_RANGE, FAN_RANGE, HEATER_RANGE

@dataclass(frozen=True)
class AlertThresholds:
    # SAFETY_VIOLATION: the Bullet R1's level ranges (as the device sidecar enforces them) and a preheat window in °C.
    power_min: float = HEATER_RANGE[0]
    power_max: float = HEATER_RANGE[1]
    fan_min: float = FAN_RANGE[0]
    fan_max: float = FAN_RANGE[1]
    drum_min: float = DRUM_RANGE[0]
    drum_max: float = DRUM_RANGE[1]
    preheat_min_c: float = 100
    preheat_max_c: float = 300
    # RATE_LIMIT_EXCEEDED: more than this many proposals for one machine within the window.
    max_proposals_per_window: int = 6
    rate_window_s: float = 60
    # APPROVAL_TIMEOUT: no decision within this long (decided late, or still waiting at as_of).
    approval_timeout_s: float = 120
    # EXECUTION_STUCK: still EXECUTING at as_of longer than command_timeout_s + end_write_cycles x warehouse_cycle_s +
    # stuck_margin_s after it started. The sidecar ends every command within its command timeout and writes the end on
    # a later warehouse cycle (the next; later while another writer holds the warehouse, the writes wait and are
    # retried each cycle): longer means nobody recorded how the command ended (a sidecar that died with its worker, a
    # lost write). The first two are the sidecar's own settings (device contract defaults): configure them as the
    # sidecar runs. An execution that recorded the timeout it ran with (commands.proposals.command_timeout_s) uses
    # that instead of command_timeout_s. The margin absorbs clock skew between the sidecar's host and the store's.
    command_timeout_s: float = device.COMMAND_TIMEOUT_S
    warehouse_cycle_s: float = device.WAREHOUSE_CYCLE_S
    end_write_cycles: int = 5
    stuck_margin_s: float = 30
    # UNUSUAL_PATTERN: the target of one SET_* command type changes direction this often in the window.
    oscillation_min_reversals: int = 4
    oscillation_window_s: float = 300
    # HIGH_FAILURE_RATE and HIGH_LATENCY judge a day x machine x command type group only when it has
    # at least this many samples (finished executions, approved proposals): a p95 of 3 values is noise.
    min_group_samples: int = 5
    # HIGH_FAILURE_RATE: failure_rate = (FAILED + TIMEOUT) / finished executions above this (ABORTED is
    # the operator's decision, as for EXECUTION_FAILURE: not a failure).
    max_failure_rate: float = 0.25
    # HIGH_LATENCY: p95 above these.
    max_approval_latency_p95_s: float = 60
    max_execution_duration_p95_s: float = 15


# The table's columns as commands migration 4 created them (tables.MIGRATIONS; a later change is a new migration).
ALERT_COLUMNS = """
    alert_id VARCHAR PRIMARY KEY, alert_type VARCHAR NOT NULL, severity VARCHAR NOT NULL,
    day DATE, machine_id VARCHAR NOT NULL, origin VARCHAR, command_type VARCHAR, proposal_id VARCHAR,
    alert_at TIMESTAMPTZ, observed_value DOUBLE, threshold DOUBLE, message VARCHAR NOT NULL"""

# An alert type is one rule below, named by its key: a query over ``p`` (the proposals) returning
# (severity, machine_id, command_type, proposal_id, alert_at, observed_value, threshold, message; the alert takes
# the proposal's origin) in _RULES, or over the outcome metrics returning (severity, day, machine_id, origin, ...,
# message, measure) in _GROUP_RULES; rules over windows of proposals count each origin apart. Its
# thresholds are $fields of AlertThresholds. ALERT_TYPES, the asset's description and metadata and
# the alerts_well_formed check follow from the keys.

# Shared by the per-proposal rules: the time a proposal entered the log (metrics.ENTERED_AT).
_BASE = f"""
    WITH p AS (SELECT *, {ENTERED_AT} AS event_at FROM commands.proposals)
"""

_RULES = {
    "SAFETY_VIOLATION": """
        , limits(command_type, lo, hi) AS (VALUES ('SET_POWER', $power_min, $power_max),
            ('SET_FAN', $fan_min, $fan_max), ('SET_DRUM', $drum_min, $drum_max),
            ('PREHEAT', $preheat_min_c, $preheat_max_c))
        , v AS (
            SELECT p.*, lo, hi, CASE WHEN target_value NOT BETWEEN lo AND hi THEN target_value ELSE actual_value END AS bad
            FROM p JOIN limits USING (command_type)
            WHERE target_value NOT BETWEEN lo AND hi OR actual_value NOT BETWEEN lo AND hi)
        SELECT CASE WHEN status IN ('PROPOSED', 'PENDING_APPROVAL', 'REJECTED') THEN 'WARNING' ELSE 'CRITICAL' END,
            machine_id, command_type, proposal_id, event_at, bad, CASE WHEN bad < lo THEN lo ELSE hi END,
            format('{} {} outside the safe range [{}, {}] (status {})', command_type, bad, lo, hi, status)
        FROM v""",
    "CONSTRAINT_VIOLATION": """
        , c AS (
            SELECT p.*,
                TRY_CAST(json_extract_string(constraints, '$.min_value') AS DOUBLE) AS cmin,
                TRY_CAST(json_extract_string(constraints, '$.max_value') AS DOUBLE) AS cmax,
                TRY_CAST(json_extract_string(constraints, '$.max_deviation') AS DOUBLE) AS cdev
            FROM p WHERE constraints IS NOT NULL)
        , v AS (
            SELECT *, CASE
                WHEN target_value < cmin THEN {'what': 'target', 'value': target_value, 'bound': cmin}
                WHEN target_value > cmax THEN {'what': 'target', 'value': target_value, 'bound': cmax}
                WHEN actual_value < cmin THEN {'what': 'actual', 'value': actual_value, 'bound': cmin}
                WHEN actual_value > cmax THEN {'what': 'actual', 'value': actual_value, 'bound': cmax}
                WHEN abs(actual_value - target_value) > cdev THEN {'what': 'deviation', 'value': abs(actual_value - target_value), 'bound': cdev}
            END AS breach
            FROM c)
        SELECT 'ERROR', machine_id, command_type, proposal_id, event_at,
            breach.value, breach.bound,
            format('{} value {} breaks the proposal''s own constraint {} ({})', breach.what, breach.value, breach.bound, constraints)
        FROM v WHERE breach IS NOT NULL""",
    "RATE_LIMIT_EXCEEDED": """
        , w AS (
            SELECT *, count(*) OVER (PARTITION BY machine_id, origin ORDER BY event_at
                RANGE BETWEEN to_seconds($rate_window_s) PRECEDING AND CURRENT ROW) AS n_in_window
            FROM p WHERE event_at IS NOT NULL)
        , e AS (SELECT *, lag(n_in_window) OVER (PARTITION BY machine_id, origin ORDER BY event_at, proposal_id) AS before FROM w)
        SELECT 'WARNING', machine_id, NULL, proposal_id, event_at,
            n_in_window, $max_proposals_per_window,
            format('{} proposals for {} within {} s (limit {})', n_in_window, machine_id, $rate_window_s, $max_proposals_per_window)
        FROM e WHERE n_in_window > $max_proposals_per_window AND coalesce(before, 0) <= $max_proposals_per_window""",
    "EXECUTION_FAILURE": """
        SELECT 'ERROR', machine_id, command_type, proposal_id, execution_completed_at,
            epoch(execution_completed_at) - epoch(execution_started_at), NULL,
            format('{} {} ended {}: {}', command_type, coalesce(CAST(target_value AS VARCHAR), ''), status, coalesce(error, 'no error given'))
        FROM p WHERE status IN ('FAILED', 'TIMEOUT')""",
    # A proposal whose execution started from an illegal lifecycle (model.RAN_UNAPPROVED) is kept out of
    # commands.proposals; its invalid_transitions rows say why. One alert per proposal, at its first such start.
    "UNAPPROVED_EXECUTION": f"""
        SELECT 'CRITICAL', machine_id, command_type, proposal_id, changed_at, NULL, NULL,
            format('{{}} on {{}} ran without a valid approval (at {{}}); the proposal''s lifecycle problems are in commands.invalid_transitions',
                   command_type, proposal_id, location)
        FROM commands.invalid_transitions WHERE problem = '{RAN_UNAPPROVED}'
        QUALIFY row_number() OVER (PARTITION BY proposal_id ORDER BY changed_at, location) = 1""",
    "EXECUTION_STUCK": """
        , w AS (SELECT *, epoch(CAST($as_of AS TIMESTAMPTZ)) - epoch(execution_started_at) AS running_s,
                    coalesce(command_timeout_s, $command_timeout_s) + $end_write_cycles * $warehouse_cycle_s + $stuck_margin_s AS limit_s
                FROM p WHERE status = 'EXECUTING')
        SELECT 'ERROR', machine_id, command_type, proposal_id, execution_started_at, running_s, limit_s,
            format('{} {} still EXECUTING {:.0f} s after it started (limit {:g} s): nothing recorded how it ended',
                   command_type, coalesce(CAST(target_value AS VARCHAR), ''), running_s, limit_s)
        FROM w WHERE running_s > limit_s""",
    "APPROVAL_EXPIRED": """
        SELECT 'WARNING', machine_id, command_type, proposal_id, expired_at,
            epoch(expired_at) - epoch(approved_at), NULL,
            format('approved {} {} never ran: the sidecar closed it EXPIRED ({})', command_type,
                   coalesce(CAST(target_value AS VARCHAR), ''), coalesce(expiry_reason, 'no reason given'))
        FROM p WHERE status = 'EXPIRED'""",
    "APPROVAL_TIMEOUT": """
        , w AS (
            SELECT *, CASE
                WHEN status IN ('PROPOSED', 'PENDING_APPROVAL') THEN epoch(CAST($as_of AS TIMESTAMPTZ)) - epoch(created_at)
                ELSE epoch(coalesce(approved_at, rejected_at)) - epoch(created_at) END AS waited_s
            FROM p WHERE created_at IS NOT NULL)
        SELECT 'WARNING', machine_id, command_type, proposal_id, created_at, waited_s, $approval_timeout_s,
            format('{} waited {:.0f} s for a decision (limit {} s, status {})', proposal_id, waited_s, $approval_timeout_s, status)
        FROM w WHERE waited_s > $approval_timeout_s""",
    "UNUSUAL_PATTERN": """
        , steps AS (
            SELECT *, sign(target_value - lag(target_value) OVER (PARTITION BY machine_id, command_type, origin ORDER BY event_at, proposal_id)) AS direction
            FROM p WHERE command_type IN ('SET_POWER', 'SET_FAN', 'SET_DRUM') AND target_value IS NOT NULL AND event_at IS NOT NULL)
        , moves AS (
            SELECT *, CAST(direction <> lag(direction) OVER (PARTITION BY machine_id, command_type, origin ORDER BY event_at, proposal_id) AS INTEGER) AS reversal
            FROM steps WHERE direction <> 0)
        , w AS (
            SELECT *, sum(reversal) OVER (PARTITION BY machine_id, command_type, origin ORDER BY event_at
                RANGE BETWEEN to_seconds($oscillation_window_s) PRECEDING AND CURRENT ROW) AS reversals
            FROM moves)
        , e AS (SELECT *, lag(reversals) OVER (PARTITION BY machine_id, command_type, origin ORDER BY event_at, proposal_id) AS before FROM w)
        SELECT 'WARNING', machine_id, command_type, proposal_id, event_at, reversals, $oscillation_min_reversals,
            format('{} on {} changed direction {} times within {} s (oscillating control)', command_type, machine_id, reversals, $oscillation_window_s)
        FROM e WHERE reversals >= $oscillation_min_reversals AND coalesce(before, 0) < $oscillation_min_reversals""",
}

# Rules over the aggregated outcome metrics (one alert per day x machine x origin x command type, and per
# measure: the last column, part of the alert's identity).
_GROUP_RULES = {
    "HIGH_FAILURE_RATE": """
        SELECT 'ERROR', day, machine_id, origin, command_type, NULL, NULL, failure_rate, $max_failure_rate,
            format('{} of {} finished executions failed or timed out (failure rate {:.2f} > {:.2f})',
                   n_failures, n_terminal_executed, failure_rate, $max_failure_rate), NULL
        FROM commands.outcome_metrics
        WHERE n_terminal_executed >= $min_group_samples AND failure_rate > $max_failure_rate""",
    "HIGH_LATENCY": """
        SELECT 'WARNING', day, machine_id, origin, command_type, NULL, NULL, observed, threshold,
            format('{} p95 {:.1f} s > {} s', what, observed, threshold), what
        FROM commands.outcome_metrics,
            LATERAL (VALUES ('decision latency', approval_latency_p95_s, $max_approval_latency_p95_s, approval_latency_n),
                            ('execution duration', execution_duration_p95_s, $max_execution_duration_p95_s, execution_duration_n))
                AS m(what, observed, threshold, samples)
        WHERE observed > threshold AND samples >= $min_group_samples""",
}

ALERT_TYPES = (*_RULES, *_GROUP_RULES)


def alerts_sql() -> str:
    per_proposal_union = " UNION ALL ".join(
        f"SELECT '{alert_type}' AS alert_type, severity, CAST(timezone('UTC', alert_at) AS DATE) AS day, machine_id, command_type, proposal_id, alert_at, observed_value, threshold, message, NULL AS measure FROM (({_BASE} {sql})) AS r(severity, machine_id, command_type, proposal_id, alert_at, observed_value, threshold, message)"
        for alert_type, sql in _RULES.items()
    )
    group_union = " UNION ALL ".join(
        f"SELECT '{alert_type}' AS alert_type, * FROM ({sql}) AS g(severity, day, machine_id, origin, command_type, proposal_id, alert_at, observed_value, threshold, message, measure)"
        for alert_type, sql in _GROUP_RULES.items()
    )
    return f"""
        INSERT INTO commands.alerts BY NAME
        -- the identity leaves out the message and values: they change as the log grows (a wait so far, a group's
        -- counts), and downstream notification deduplicates on alert_id
        SELECT md5(concat_ws('|', alert_type, machine_id, origin, command_type, proposal_id, day, measure)) AS alert_id, * EXCLUDE (measure)
        FROM (
            -- a proposal's alert carries its origin (one with lifecycle problems is only in invalid_transitions)
            SELECT u.*, o.origin FROM ({per_proposal_union}) AS u LEFT JOIN (
                SELECT proposal_id, origin FROM commands.proposals
                UNION SELECT proposal_id, origin FROM commands.invalid_transitions) AS o USING (proposal_id)
            UNION ALL BY NAME SELECT * FROM ({group_union}))
        ORDER BY day, machine_id, origin, alert_type, alert_at
    """


def build_alerts(con: duckdb.DuckDBPyConnection, thresholds: AlertThresholds, as_of: datetime | None = None) -> None:
    """Replace the rows of ``commands.alerts`` (call inside one transaction). ``as_of`` (for still-pending
    proposals and running executions) defaults to the ingest's (``metrics.recorded_as_of``)."""
    serialize_writes(con)  # two concurrent replacements on DuckLake would both commit (db.serialize_writes)
    con.execute("DELETE FROM commands.alerts")
    con.execute(alerts_sql(), {**asdict(thresholds), "as_of": as_of or recorded_as_of(con)})
