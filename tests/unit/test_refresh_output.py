"""A refresh's product lines as side-by-side forks print them: each product's message stays under
its own line, however the forks' writes interleave."""

import re
import subprocess
import sys

OUTCOMES = 300  # per fork: enough writes for two forks on two cores to interleave

# Two jobs in forks (mesh_platform.side_by_side, as a refresh runs its locations' runs) print
# their outcomes to the pipe they share, as a refresh's forks share its terminal.
SCRIPT = f"""
from rich.console import Console
from mesh_platform import side_by_side
from mesh_platform.refresh import Outcome, _printer

def job(who):
    show = _printer(Console(highlight=False, soft_wrap=True), width=10)
    for i in range({OUTCOMES}):
        show(Outcome(f"{{who}}/p{{i}}", "ERROR", message=f"{{who}} {{i}} first\\n{{who}} {{i}} second"))
    return who

assert side_by_side.run({{who: lambda who=who: job(who) for who in "ab"}}) == {{"a": "a", "b": "b"}}
"""


def test_each_outcome_keeps_its_message_under_it_when_forks_print_at_once():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 * OUTCOMES * 3
    seen = set()
    for at in range(0, len(lines), 3):
        head = re.fullmatch(r"  ([ab])/p(\d+) +ERROR *", lines[at])
        assert head, lines[at:at + 3]
        who, i = head.groups()
        assert lines[at + 1:at + 3] == [f"    {who} {i} first", f"    {who} {i} second"], lines[at:at + 3]
        seen.add((who, int(i)))
    assert seen == {(who, i) for who in "ab" for i in range(OUTCOMES)}
