"""The requirement catalogue, the static rules, the observation of a host and its assessment."""
