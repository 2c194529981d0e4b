"""The scheduler: a queue, a framework of filter and score plugins over a node snapshot,
binding through the API, and FailedScheduling events that say why.

Wire it with ``Scheduler(client, rng=..., tracker=...)`` and
``await nursery.start(scheduler.run)``. Modules, one job each:

- ``podinfo`` / ``affinity``: a pod digested once (requests, compiled selectors);
- ``snapshot``: NodeInfos kept incrementally, with the assume cache;
- ``interface`` / ``plugins``: the plugin contract and the default plugins;
- ``framework``: sampling, filters, scores, host selection (with an exact fast path for
  the default profile: resource plugins folded into one memo per request vector, read
  through the snapshot's flat ``resource_keys``); ``messages``: FitError text;
- ``queue``: active / backoff / unschedulable; ``events``: correlated Events;
- ``scheduler``: the actor that wires informers, queue, framework and binding.

Where this differs from kube-scheduler (on purpose, or not yet done):

- default spreading groups pods by their controller ownerReference instead of by the
  selectors of the Services / RCs / ReplicaSets / StatefulSets that match them;
- not implemented: user ``topologySpreadConstraints``, inter-pod (anti-)affinity, host
  ports, volumes, image locality, extended resources, scheduling gates, preemption (so
  FailedScheduling messages carry no ``preemption: ...`` part), queueing hints (every
  node add / relevant node update / assigned pod deletion moves all unschedulable pods);
- ties are broken by one uniform draw among the best nodes (the same distribution as
  selectHost's reservoir sampling, with one random number instead of one per tie);
- Events are core/v1 with count/first/last timestamps, correlated by identical message.
"""

from controlplane.scheduler.framework import FitError, Framework, ScheduleResult
from controlplane.scheduler.scheduler import (
    DEFAULT_SCHEDULER_NAME,
    Scheduler,
    SchedulerConfig,
    SchedulerStatistics,
)

__all__ = [
    "DEFAULT_SCHEDULER_NAME",
    "FitError",
    "Framework",
    "ScheduleResult",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerStatistics",
]
