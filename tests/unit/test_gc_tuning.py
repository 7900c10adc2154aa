"""Long-running processes collect garbage less often and leave their start-up objects alone."""

from __future__ import annotations

import json
import subprocess
import sys

from omnirouter.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD

_PROBE = """
import gc, json
from omnirouter.gc_tuning import tune_for_long_running
before = gc.get_freeze_count()
tune_for_long_running()
print(json.dumps({"threshold": gc.get_threshold(), "frozen_before": before,
                  "frozen_after": gc.get_freeze_count()}))
"""


def test_tuning_raises_the_thresholds_and_freezes_what_exists() -> None:
    # In a child process: freezing this test process's objects would outlive the test.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(out.stdout)
    assert tuple(report["threshold"]) == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    assert report["frozen_before"] == 0
    assert report["frozen_after"] > 1000  # the imported modules and their objects at least
