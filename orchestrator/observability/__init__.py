"""Watching coderm work: the Prometheus metric families (metrics), serving them (exposition),
the Grafana dashboards (dashboards) and their pictures drawn from Prometheus (dashboard_images,
prometheus_api).
"""
