"""Background jobs: heavy work (generate, evaluate, train, webhook deliveries) run by worker processes.

    job_id = enqueue(catalog, "generate", {"model": "digits", "per_class": 4}, created_by="cli")
    genloop worker               # a worker process claims it, runs it, stores the result
    get(catalog, job_id)         # status, progress 0..1, message, result or error

The queue lives in the catalog (`jobs` table), so the server only enqueues and reads, and
any number of workers share one queue (see queue.py for why two never run the same job).
"""

from genloop.jobs.queue import JOB_KINDS, JobView, cancel, claim, enqueue, get, list_jobs

__all__ = ["JOB_KINDS", "JobView", "cancel", "claim", "enqueue", "get", "list_jobs"]
