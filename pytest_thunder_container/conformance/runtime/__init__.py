"""The runtime checks: one verdict per requirement ID, judged from one observation."""
