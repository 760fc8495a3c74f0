"""The `thunder-container` command line."""
