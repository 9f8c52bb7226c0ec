"""Production monitoring of a service: the reference profile stored at training, the window read
from the prediction log, the judgement (drift, quality, performance, freshness), its metrics,
report and actions. The monitor-service flow (flows/monitor_service.py) runs them in order."""
