"""StoreResultsFunction ships PyAV itself (issue 19): only the store step reads videos, so the 95 MB of
FFmpeg stay out of the layer every function loads. Its build installs the pinned wheel for Lambda's
python3.13 on arm64, as the layer's build does."""
from __future__ import annotations

import re
from pathlib import Path

from local import cfn

ROOT = Path(__file__).resolve().parents[2]


def test_the_store_function_pins_pyav_and_builds_it_for_lambda():
    template = cfn.load_template(ROOT / "template.yaml")
    store = template["Resources"]["StoreResultsFunction"]
    folder = ROOT / store["Properties"]["CodeUri"]
    requirements = [line.strip() for line in (folder / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert requirements == ["av==19.0.2"]
    makefile = (folder / "Makefile").read_text()
    layer = (ROOT / "layers" / "common" / "Makefile").read_text()
    platform = re.search(r"^PIP_PLATFORM := (.+?)(?<!\\)$", layer, re.M | re.S).group(1)
    assert re.search(r"^PIP_PLATFORM := " + re.escape(platform) + "$", makefile, re.M), "the layer's wheels"
    assert "-r requirements.txt" in makefile and '-t "$(ARTIFACTS_DIR)"' in makefile
    assert store["Properties"]["MemorySize"] >= 1024 and store["Properties"]["Timeout"] >= 300
    # av stays out of the layer: no other function imports it
    assert "av" not in {re.split(r"[=<>\[ ]", line)[0] for line in
                        (ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines()}
