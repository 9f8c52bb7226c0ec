"""Delivery: promoting what passed in one environment to the next (`shipyard promote`)."""
