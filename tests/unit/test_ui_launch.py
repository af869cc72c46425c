"""How `mesh materialize` finds the UI `mesh ui` announced: an announcement whose process is gone,
or whose port does not answer, is ignored; a UI withdraws only its own announcement. (The launch
itself, through a real `mesh ui`, is tested in tests/workspace/test_ui_smoke.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

from workspace.server import free_port

from mesh_platform.ui_launch import ANNOUNCEMENT, RunningUI, announce, running_ui, withdraw


def test_an_announcement_of_a_dead_process_is_ignored(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ui = RunningUI(free_port(), gone.pid)
    announce(tmp_path, ui)
    assert running_ui(tmp_path, check=False) == ui  # announced, but gone
    assert running_ui(tmp_path) is None


def test_an_announcement_whose_port_does_not_answer_is_ignored(tmp_path):
    announce(tmp_path, RunningUI(free_port(), os.getpid()))  # alive, but serving nothing
    assert running_ui(tmp_path) is None


def test_no_or_a_garbled_announcement_is_no_ui(tmp_path):
    assert running_ui(tmp_path) is None
    (tmp_path / ANNOUNCEMENT).write_text('{"port": "x"')
    assert running_ui(tmp_path) is None


def test_a_ui_withdraws_only_its_own_announcement(tmp_path):
    first, second = RunningUI(free_port(), os.getpid()), RunningUI(free_port(), os.getpid() + 1)
    announce(tmp_path, first)
    announce(tmp_path, second)  # another `mesh ui` on the same home since
    withdraw(tmp_path, first)
    assert running_ui(tmp_path, check=False) == second
    withdraw(tmp_path, second)
    assert not (tmp_path / ANNOUNCEMENT).exists()
