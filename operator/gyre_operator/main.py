"""The Gyre operator: importing this module registers every kopf handler.

Run with `gyre operator` (or `kopf run -m gyre_operator.main`). Watch events only fill
caches and queues; the reconciles run from the queues (see controllers/).
"""

from gyre_operator.controllers import (
    dataset,
    driftmonitor,
    inferenceservice,
    jobs,
    lifecycle,
    modelversion,
    trainingrun,
)

HANDLERS = (lifecycle, dataset, trainingrun, modelversion, inferenceservice, driftmonitor, jobs)
