"""The repository's promises: the README's two Quickstart commands, and CI running the second."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quickstart_commands():
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    install_demo, install_test = _quickstart_commands()
    assert install_demo.endswith("ionkinetics demo") and "pip install -e ." in install_demo
    # CI runs both tiers: the default suite and the slow checks (the MD-hours tier is never in CI)
    assert install_test.endswith("pytest --runslow") and "'.[test]'" in install_test
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == install_test
