"""Kubernetes manifests for services and rollouts (`shipyard k8s render`), without a cluster."""
