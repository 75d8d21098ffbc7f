"""The core must work with no backend imported: backends load inside plugins, on use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BACKENDS = ("torch", "onnx", "onnxruntime", "openvino", "tensorrt", "ultralytics", "timm", "nncf")

PROBE = """
import json, sys
from deploybench.cli import main
code = main(sys.argv[1:])
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads('{backends}')))
print('LOADED=' + json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["list", "runtimes"], ["list", "exporters"], ["env", "--json"], ["cache", "list"]]
)
def test_commands_import_no_backend(argv: list[str], tmp_path) -> None:
    script = PROBE.replace("{backends}", json.dumps(list(BACKENDS)))
    result = subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        env={"DEPLOYBENCH_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stderr.rsplit("LOADED=", 1)[1])
    assert loaded == [], f"{argv} imported {loaded}"
