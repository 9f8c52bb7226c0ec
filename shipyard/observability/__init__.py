"""The Prometheus stack compiled from the plan: configuration, rules, dashboards, processes.

`render` writes prometheus.yml, rules/*.yml, alertmanager.yml and Grafana's provisioning from a
Plan (pure: nothing is started); `stack` runs Prometheus, the Pushgateway, Alertmanager,
node-exporter and the alert receiver under the state folder (`shipyard observability up`).
"""
