"""The conformance suites: run them with `pytest --pyargs pytest_thunder_container.suites`."""
