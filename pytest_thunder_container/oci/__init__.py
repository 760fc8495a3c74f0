"""The OCI config.json: its model and the official runtime-spec schema."""
