"""Loads the emulator fixtures (services.fixtures) for the tests in this folder.

Once tests/conftest.py declares `pytest_plugins = ["services.fixtures"]` (which makes them
available to every test), this does nothing: a plugin is registered once, so each server still
starts once per session.
"""


def pytest_configure(config) -> None:
    config.pluginmanager.import_plugin("services.fixtures")
