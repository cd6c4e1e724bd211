"""CI: the benchmark harness runs end to end (tiny counts; nothing asserted about speed)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_smoke(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for part in ("async", "sync", "ingest", "latency", "stream"):
        assert part in results and "error" not in results[part], results.get(part)
    assert results["sync"]["non_200"] == 0
    assert results["stream"]["streams_complete"] == results["stream"]["streams"]   # every stream got every event
    assert results["table"], "no table rows"
    assert "measure" in proc.stdout
