"""Pipeline stages and drivers: taxonomy, pairs, scenarios, responses, scoring and analysis."""
