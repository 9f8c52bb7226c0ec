"""Rollouts: canary, blue-green and rolling deliveries under statistical analysis."""
