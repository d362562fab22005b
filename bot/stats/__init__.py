"""KPIs for the brand and Prometheus metrics for operators."""
