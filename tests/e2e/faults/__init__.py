"""Helpers of the fault self-tests: inner pytest runs, broken images, what a run left behind."""
