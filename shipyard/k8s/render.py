"""Plan steps -> Kubernetes manifests: pure functions, no cluster, no files, no Kubernetes client.

A service renders as a Deployment of its stable variant, a Service and a HorizontalPodAutoscaler.
A rollout renders two alternative sets for its service, in two folders, because they own the
same pods and must not be applied together:

- `argo/`: an Argo Rollouts `Rollout` whose pod template is the candidate's (applied over a
  Rollout running stable, it starts the canary, blue-green switch or rolling update), the
  `AnalysisTemplate` holding the rollout's analysis as PromQL, the Service(s) and an HPA.
- `plain/`: one plain Deployment per variant, a Service selecting stable (changing its
  `shipyard.io/variant` selector to the candidate is the blue-green cutover), a preview Service
  selecting the candidate, and an HPA. No weights: this is the path for clusters without Argo.

Every variant runs the same image: one Bento serves all of a service's variants, and
`bentoml containerize` names the image after the Bento tag (<service>:<version>). The pod's
`SHIPYARD_VARIANT` says which variant it is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.compiler.plan import KubernetesPlan
from shipyard.compiler.rollouts import MetricPlan, RolloutStep
from shipyard.compiler.services import STABLE, ServiceStep

Manifest = dict[str, Any]

ARGO_API = "argoproj.io/v1alpha1"
DEFAULT_PROMETHEUS = "http://prometheus.monitoring.svc.cluster.local:9090"
"""Where the AnalysisTemplate's queries go when the profile names no Prometheus url."""
NOT_IN_PROMETHEUS = "shipyard.io/not-in-prometheus"
"""Annotation listing the analysis checks Argo cannot run, so none disappears silently."""
NOT_IN_ARGO = "shipyard.io/not-in-argo"
"""Annotation of the Rollout listing what of the rollout Argo's basic canary cannot do."""
VARIANT_LABEL = "shipyard.io/variant"
WORKLOAD_LABEL = "shipyard.io/workload"
"""`deployment` (plain/) or `rollout` (argo/): keeps the two sets' selectors apart."""
CONTAINER = "bento"


@dataclass(frozen=True)
class RenderedFile:
    """One manifest and the file it goes to, with a comment saying what the file is for."""

    path: str
    header: str
    manifest: Manifest

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def image_of(service: ServiceStep, k8s: KubernetesPlan, tag: str) -> str:
    """`{registry}/{service}:{tag}`: the name `bentoml containerize` gives the Bento's image."""
    image = f"{service.service}:{tag}"
    return f"{k8s.registry}/{image}" if k8s.registry else image


def k8s_name(text: str) -> str:
    """A DNS-1123 name: Shipyard names may hold underscores, Kubernetes names may not."""
    return text.lower().replace("_", "-")


def labels(service: ServiceStep, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": k8s_name(service.service),
        "app.kubernetes.io/part-of": k8s_name(service.project),
        "app.kubernetes.io/managed-by": "shipyard",
        **(extra or {}),
    }


def metadata(name: str, k8s: KubernetesPlan, service: ServiceStep, **extra: str) -> Manifest:
    return {"name": name, "namespace": k8s.namespace, "labels": labels(service, extra or None)}


def pod_template(
    service: ServiceStep, variant: str, workload: str, k8s: KubernetesPlan, image: str
) -> Manifest:
    """The pod of one variant: the Bento image on the service port, probed on /readyz and
    /livez, with the CPU request the autoscaler's percentages are taken of."""
    return {
        "metadata": {
            "labels": labels(service, {VARIANT_LABEL: k8s_name(variant), WORKLOAD_LABEL: workload})
        },
        "spec": {
            "containers": [
                {
                    "name": CONTAINER,
                    "image": image,
                    "ports": [{"name": "http", "containerPort": service.port}],
                    "env": [
                        {"name": "SHIPYARD_VARIANT", "value": variant},
                        {"name": "BENTOML_PORT", "value": str(service.port)},
                    ],
                    "resources": {
                        "requests": {"cpu": k8s.cpu_request, "memory": k8s.memory_request}
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": "http"},
                        "periodSeconds": 5,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/livez", "port": "http"},
                        "initialDelaySeconds": 30,
                        "periodSeconds": 10,
                    },
                }
            ]
        },
    }


def selector(service: ServiceStep, workload: str, variant: str | None = None) -> dict[str, str]:
    found = {"app.kubernetes.io/name": k8s_name(service.service), WORKLOAD_LABEL: workload}
    if variant is not None:
        found[VARIANT_LABEL] = k8s_name(variant)
    return found


def deployment(service: ServiceStep, variant: str, k8s: KubernetesPlan, image: str) -> Manifest:
    name = k8s_name(f"{service.service}-{variant}")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, k8s, service, **{VARIANT_LABEL: k8s_name(variant)}),
        "spec": {
            "replicas": k8s.replicas,
            "selector": {"matchLabels": selector(service, "deployment", variant)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": pod_template(service, variant, "deployment", k8s, image),
        },
    }


def k8s_service(
    service: ServiceStep, name: str, k8s: KubernetesPlan, pods: dict[str, str]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, k8s, service),
        "spec": {
            "type": "ClusterIP",
            "selector": pods,
            "ports": [{"name": "http", "port": service.port, "targetPort": "http"}],
        },
    }


def autoscaler(
    service: ServiceStep, name: str, k8s: KubernetesPlan, target: tuple[str, str, str]
) -> Manifest:
    api_version, kind, target_name = target
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, k8s, service),
        "spec": {
            "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target_name},
            "minReplicas": k8s.min_replicas,
            "maxReplicas": k8s.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": k8s.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


# -- a service ------------------------------------------------------------------------------


def service_manifests(service: ServiceStep, k8s: KubernetesPlan, tag: str) -> list[RenderedFile]:
    """A service on its own: its stable variant's Deployment, the Service, the autoscaler."""
    image = image_of(service, k8s, tag)
    name = k8s_name(service.service)
    stable = k8s_name(f"{service.service}-{STABLE}")
    return [
        RenderedFile(
            "deployment.yaml",
            f"Deployment {stable}: the stable variant of service '{service.service}' ({image}).",
            deployment(service, STABLE, k8s, image),
        ),
        RenderedFile(
            "service.yaml",
            f"Service {name}: port {service.port} in front of the stable pods.",
            k8s_service(service, name, k8s, selector(service, "deployment", STABLE)),
        ),
        RenderedFile(
            "hpa.yaml",
            f"HorizontalPodAutoscaler {stable}: {k8s.min_replicas}-{k8s.max_replicas} replicas "
            f"at {k8s.target_cpu_percent}% CPU.",
            autoscaler(service, stable, k8s, ("apps/v1", "Deployment", stable)),
        ),
    ]


# -- a rollout ------------------------------------------------------------------------------


def rollout_manifests(
    rollout: RolloutStep, service: ServiceStep, k8s: KubernetesPlan, tag: str
) -> list[RenderedFile]:
    """Both sets of a rollout: argo/ (Rollout, AnalysisTemplate, Services, HPA) and plain/
    (a Deployment per variant, the Service whose selector switch is the cutover, its preview,
    an HPA). See the module docstring for why there are two."""
    return [
        *argo_manifests(rollout, service, k8s, tag),
        *plain_manifests(rollout, service, k8s, tag),
    ]


def plain_manifests(
    rollout: RolloutStep, service: ServiceStep, k8s: KubernetesPlan, tag: str
) -> list[RenderedFile]:
    image = image_of(service, k8s, tag)
    name = k8s_name(service.service)
    candidate = rollout.candidate.name
    preview = f"{name}-preview"
    cutover = (
        f"kubectl -n {k8s.namespace} patch service {name} -p "
        f'\'{{"spec":{{"selector":{{"{VARIANT_LABEL}":"{k8s_name(candidate)}"}}}}}}\''
    )
    files = [
        RenderedFile(
            f"plain/deployment-{k8s_name(variant)}.yaml",
            f"Deployment {k8s_name(f'{service.service}-{variant}')}: variant '{variant}' of "
            f"service '{service.service}' (plain Kubernetes; do not also apply argo/).",
            deployment(service, variant, k8s, image),
        )
        for variant in (STABLE, candidate)
    ]
    files += [
        RenderedFile(
            "plain/service.yaml",
            f"Service {name}: selects the stable pods. The cutover to '{candidate}' is this "
            f"selector switch:\n  {cutover}\nand switching back to stable is the rollback.",
            k8s_service(service, name, k8s, selector(service, "deployment", STABLE)),
        ),
        RenderedFile(
            "plain/service-preview.yaml",
            f"Service {preview}: selects the '{candidate}' pods only, to test them before the "
            "cutover.",
            k8s_service(service, preview, k8s, selector(service, "deployment", candidate)),
        ),
        RenderedFile(
            "plain/hpa.yaml",
            f"HorizontalPodAutoscaler of Deployment {name}-stable (after the cutover, point "
            f"it at {k8s_name(f'{name}-{candidate}')}).",
            autoscaler(service, f"{name}-stable", k8s, ("apps/v1", "Deployment", f"{name}-stable")),
        ),
    ]
    return files


def argo_manifests(
    rollout: RolloutStep, service: ServiceStep, k8s: KubernetesPlan, tag: str
) -> list[RenderedFile]:
    image = image_of(service, k8s, tag)
    name = k8s_name(service.service)
    pods = selector(service, "rollout")
    candidate = rollout.candidate.name
    strategy = rollout.strategy.replace("_", "-")
    template = analysis_template(rollout, service, k8s)
    analysed = bool(template["spec"]["metrics"])
    files = [
        RenderedFile(
            "argo/rollout.yaml",
            f"Rollout {name}: {strategy} of '{candidate}' over stable (Argo Rollouts). Its pod "
            "template is the candidate's: applied over a Rollout running stable it starts the "
            "rollout; on a fresh cluster Argo deploys it at once. Do not also apply plain/.",
            argo_rollout(rollout, service, k8s, image, analysed=analysed),
        ),
    ]
    if analysed:
        files.append(
            RenderedFile(
                "argo/analysistemplate.yaml",
                f"AnalysisTemplate {k8s_name(rollout.name)}: the rollout's analysis as PromQL "
                f"over the metrics of service '{service.service}'.",
                template,
            )
        )
    files += [
        RenderedFile(
            "argo/service.yaml",
            f"Service {name}: the Rollout's pods"
            + (" (Argo points it at the active version)." if strategy == "blue-green" else "."),
            k8s_service(service, name, k8s, pods),
        ),
    ]
    if rollout.strategy == "blue_green":
        files.append(
            RenderedFile(
                "argo/service-preview.yaml",
                f"Service {name}-preview: Argo points it at the new version before the switch.",
                k8s_service(service, f"{name}-preview", k8s, pods),
            )
        )
    files.append(
        RenderedFile(
            "argo/hpa.yaml",
            f"HorizontalPodAutoscaler of Rollout {name}.",
            autoscaler(service, name, k8s, (ARGO_API, "Rollout", name)),
        )
    )
    return files


def _duration(seconds: float) -> str:
    """Argo's duration strings: whole seconds (`40s`)."""
    return f"{max(1, round(seconds))}s"


def argo_rollout(
    rollout: RolloutStep,
    service: ServiceStep,
    k8s: KubernetesPlan,
    image: str,
    *,
    analysed: bool = True,
) -> Manifest:
    """The Argo Rollout of the candidate: canary steps (setWeight, then pause for the stage's
    duration), a blue-green switch keeping the old version for the window, or a rolling
    update one pod at a time; the analysis runs in the background (canary, rolling) or after
    the switch (blue-green), and a failed analysis aborts back to stable."""
    name = k8s_name(service.service)
    analysis: Manifest = {
        "templates": [{"templateName": k8s_name(rollout.name)}],
        "args": [{"name": "prometheus-address", "value": prometheus_address(rollout)}],
    }
    strategy: Manifest
    if rollout.strategy == "blue_green":
        window = rollout.stages[0].duration_seconds if rollout.stages else None
        strategy = {
            "blueGreen": {
                "activeService": name,
                "previewService": f"{name}-preview",
                "autoPromotionEnabled": True,
                "scaleDownDelaySeconds": round(window) if window is not None else 30,
            }
        }
        if analysed:
            strategy["blueGreen"]["postPromotionAnalysis"] = analysis
    elif rollout.strategy == "rolling":
        strategy = {"canary": {"maxSurge": 1, "maxUnavailable": 0}}
    else:
        steps: list[Manifest] = []
        for stage in rollout.stages:
            steps.append({"setWeight": round(stage.weight)})
            pause = (
                {}
                if stage.duration_seconds is None
                else {"duration": _duration(stage.duration_seconds)}
            )
            steps.append({"pause": pause})
        if rollout.on_success == "pause":
            steps.append({"pause": {}})  # wait at the last weight for a person to promote
        strategy = {"canary": {"steps": steps}}
    if analysed and "canary" in strategy:
        strategy["canary"]["analysis"] = analysis
    meta = metadata(name, k8s, service)
    left_out = not_in_argo(rollout)
    if left_out:
        meta["annotations"] = {NOT_IN_ARGO: "; ".join(left_out)}
    return {
        "apiVersion": ARGO_API,
        "kind": "Rollout",
        "metadata": meta,
        "spec": {
            "replicas": k8s.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(service, "rollout")},
            "template": pod_template(service, rollout.candidate.name, "rollout", k8s, image),
            "strategy": strategy,
        },
    }


def not_in_argo(rollout: RolloutStep) -> list[str]:
    """What the rollout asks that a Rollout without a traffic router cannot do: stages held
    for a number of requests, and requests routed to the candidate by rule."""
    left_out = [
        f"{stage.label}: min_requests {stage.min_requests}"
        for stage in rollout.stages
        if stage.min_requests is not None
    ]
    if rollout.rules:
        left_out.append(f"{len(rollout.rules)} routing rule(s) to the candidate")
    return left_out


def prometheus_address(rollout: RolloutStep) -> str:
    return rollout.prometheus_url or DEFAULT_PROMETHEUS


# -- analysis as PromQL ---------------------------------------------------------------------


def _matchers(service: ServiceStep, variant: str, *extra: str) -> str:
    """The label matchers naming one variant of the service (`extra` are written matchers)."""
    pairs = {"project": service.project, "resource": f"service.{service.service}"}
    written = [f'{key}="{value}"' for key, value in pairs.items()]
    return ",".join([*written, 'endpoint="predict"', f'variant="{variant}"', *extra])


def _window(rollout: RolloutStep) -> str:
    """The rate() window: one analysis interval, at least a minute (rate needs two scrapes)."""
    return _duration(max(rollout.interval_seconds, 60.0))


def error_rate_query(rollout: RolloutStep, service: ServiceStep, variant: str) -> str:
    """The 5xx share of the variant's predict requests over the last interval."""
    window = _window(rollout)
    total = "shipyard_service_requests_total"
    errors = _matchers(service, variant, 'status=~"5.."')
    every = _matchers(service, variant)
    return f"sum(rate({total}{{{errors}}}[{window}])) / sum(rate({total}{{{every}}}[{window}]))"


def latency_query(rollout: RolloutStep, service: ServiceStep, variant: str, quantile: float) -> str:
    """The variant's predict latency quantile from the duration histogram, in seconds."""
    buckets = _matchers(service, variant)
    return (
        f"histogram_quantile({quantile:g}, sum by (le) (rate("
        f"shipyard_service_request_duration_seconds_bucket{{{buckets}}}[{_window(rollout)}])))"
    )


def _conditions(high: float | None, low: float | None) -> tuple[str, str]:
    """successCondition and failureCondition over `result[0]`. Both are given, so a
    measurement with no data (NaN, an empty vector) meets neither and is Inconclusive, as
    Shipyard's own analysis never passes on no data."""
    ok, bad = [], []
    if high is not None:
        ok.append(f"result[0] <= {high:g}")
        bad.append(f"result[0] > {high:g}")
    if low is not None:
        ok.append(f"result[0] >= {low:g}")
        bad.append(f"result[0] < {low:g}")
    guard = "len(result) > 0 && "
    return guard + " && ".join(ok), guard + "(" + " || ".join(bad) + ")"


def _left_out(metric: MetricPlan) -> list[str]:
    if metric.kind == "prediction_shift":
        return [metric.name]
    if metric.compare:
        return [f"{metric.name}:compare-stable"]
    return []


def analysis_template(rollout: RolloutStep, service: ServiceStep, k8s: KubernetesPlan) -> Manifest:
    """The rollout's analysis for Argo: each metric's candidate value against its limits, every
    interval, with the rollout's failure and inconclusive limits. Argo has no PSI and no
    two-sample tests, so prediction_shift and the `compare: stable` tests stay Shipyard's; the
    annotation names them."""
    candidate = rollout.candidate.name
    metrics: list[Manifest] = []
    left_out: list[str] = []
    for metric in rollout.metrics:
        left_out += _left_out(metric)
        if metric.kind == "error_rate":
            query = error_rate_query(rollout, service, candidate)
        elif metric.kind == "latency":
            query = latency_query(rollout, service, candidate, metric.quantile or 0.99)
        elif metric.kind == "query" and metric.query is not None:
            query = metric.query.replace("{{variant}}", candidate)
        else:
            continue
        success, failure = _conditions(metric.max, metric.min)
        metrics.append(
            {
                "name": k8s_name(metric.name),
                "interval": _duration(rollout.interval_seconds),
                "failureLimit": rollout.failure_limit,
                "inconclusiveLimit": rollout.inconclusive_limit,
                "successCondition": success,
                "failureCondition": failure,
                "provider": {
                    "prometheus": {"address": "{{args.prometheus-address}}", "query": query}
                },
            }
        )
    meta = metadata(k8s_name(rollout.name), k8s, service)
    if left_out:
        meta["annotations"] = {NOT_IN_PROMETHEUS: ",".join(left_out)}
    return {
        "apiVersion": ARGO_API,
        "kind": "AnalysisTemplate",
        "metadata": meta,
        "spec": {
            "args": [{"name": "prometheus-address", "value": prometheus_address(rollout)}],
            "metrics": metrics,
        },
    }
