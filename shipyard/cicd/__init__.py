"""CI/CD pipelines for a Shipyard project: `shipyard ci render` and `shipyard ci plan-diff`."""
