"""What the evals domain publishes to other domains: its warehouse tables.

A table's asset key is its name split at the dot (``evals/eval_runs``).
"""

GOLDEN_CASES = "evals.golden_cases"
EVAL_RUNS = "evals.eval_runs"
PASS_AT_K = "evals.pass_at_k"
JUDGE_SCORES = "evals.judge_scores"
JUDGE_AGREEMENT = "evals.judge_agreement"
# Partitioned by UTC day of the roast: these cannot share a run with unpartitioned assets.
DAILY_PARTITIONED = (EVAL_RUNS, JUDGE_SCORES)
PARTITIONS_START = "2026-11-01"
