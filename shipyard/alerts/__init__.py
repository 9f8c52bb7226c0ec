"""The alerts engine: routes of apprise channels, de-duplication, resolution, the delivery record.

Monitors, rollouts, A/B tests and the Alertmanager receiver call `raise_alert` and
`resolve_alert` (shipyard.alerts.engine); `shipyard alerts test|history|receive` drive it by hand.
"""
