"""Thunder itself: its JSON-RPC client and transports, and deploying a bundle where it looks."""
