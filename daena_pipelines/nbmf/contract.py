"""What the nbmf domain publishes to other domains: its warehouse tables.

A table's asset key is its name split at the dot (``nbmf/results``).
"""

RESULTS = "nbmf.results"
