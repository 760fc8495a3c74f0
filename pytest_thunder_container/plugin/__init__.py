"""pytest glue: options, fixtures, the requirement marker, evidence and the report hooks."""
