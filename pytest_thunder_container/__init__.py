"""pytest-thunder-container: conformance of Thunder plugins running in runc containers."""

__version__ = "0.1.0"
