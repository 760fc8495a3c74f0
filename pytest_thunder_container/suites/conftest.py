"""The conformance suites use the fixtures of pytest_thunder_container (installed as a plugin)."""
