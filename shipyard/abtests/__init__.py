"""A/B tests: the calculator behind `shipyard abtest calc` (size, tests, SRM, sequential, Bayes)."""
