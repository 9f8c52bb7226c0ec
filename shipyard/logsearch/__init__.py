"""`shipyard logs`: one search over flow, Shipyard, service and prediction logs, merged by time."""
