"""Several processes whose first connection to a fresh DuckLake warehouse is at the same moment
(a deployment's code server, daemon and first runs starting together): each creates the catalog
and migrates it if it finds it missing, so they race."""
from __future__ import annotations

import os
import subprocess
import sys

OPEN_AND_MIGRATE = "import sys; from daena_pipelines.db import connect\nwith connect(sys.argv[1]): pass"


def test_processes_connecting_first_at_once_all_succeed(lake_target):
    starters = [subprocess.Popen([sys.executable, "-c", OPEN_AND_MIGRATE, lake_target], env=os.environ.copy(),
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=240)[1] for p in starters]
    assert [p.returncode for p in starters] == [0, 0, 0], "\n".join(e[-1500:] for e in errors)
