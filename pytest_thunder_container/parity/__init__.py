"""Parity of Container with Local mode: scenarios as data, the runs, the comparison."""
