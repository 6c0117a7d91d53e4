"""What the regressions domain publishes to other domains: its warehouse table, and which tables it guards."""
from daena_pipelines.evals import contract as evals
from daena_pipelines.nbmf import contract as nbmf

FINDINGS = "regressions.findings"
GOLDEN = "regressions.golden"  # an asset (the golden/ folder), not a table

# The tables whose golden checks CI enforces and whose planned-but-missing materialisations are
# findings (ci.py, lib/findings_feed.py): the benchmark and the evaluations.
GUARDED = (nbmf.RESULTS, evals.EVAL_RUNS)
