"""The benchmarks' peak RSS of descendant processes sees a grandchild (a fork-server worker)."""
import subprocess
import sys

from daena_pipelines.procstats import DescendantPeakRss

# a child that starts a grandchild holding ~150 MB for a moment
GRANDCHILD = "import time; b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"
CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {GRANDCHILD!r}], check=True)"


def test_peak_rss_of_a_grandchild():
    with DescendantPeakRss(interval_s=0.05) as peak:
        subprocess.run([sys.executable, "-c", CHILD], check=True)
    assert 150 <= peak.mb < 400


def test_cpu_time_of_a_grandchild():
    busy = "import time; end = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(0.3)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}], check=True)"
    with DescendantPeakRss(interval_s=0.05) as seen:
        subprocess.run([sys.executable, "-c", child], check=True)
    assert 0.4 <= seen.cpu_s < 1.5  # the grandchild's 0.4 s and both interpreters' start-up
