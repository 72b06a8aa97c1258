"""Submit a job to coderm with nothing but an AMQP client: no coderm code, no Celery.

coderm's workers read Celery task messages (protocol 2) in JSON. Any language's AMQP library can
publish one: the body is `[args, kwargs, embed]`, the task is named in the headers. Here with kombu;
run it as `BROKER_URL=amqp://user:password@host:5672/vhost python enqueue_with_amqp.py`.
"""

import json
import os
import uuid

from kombu import Connection, Exchange, Queue

BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@localhost:5672//")

job = {
    "problems": [
        {
            "task_id": "add",
            "question": "Write a function add(a, b) that returns a + b.",
            # Samples to replay instead of asking a model; leave them out to sample the models.
            "solutions": ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"],
            "unit_tests": [
                "import unittest\n\n"
                "class TestAdd(unittest.TestCase):\n"
                "    def test_add(self):\n"
                "        self.assertEqual(add(2, 3), 5)\n"
            ],
        }
    ],
    "config": {"n_solutions": 2, "n_tests": 1},
    # The key finds the job in the database later, and a resubmission returns the same job.
    "idempotency_key": f"example-{uuid.uuid4()}",
    "source": "examples/enqueue_with_amqp.py",
}

task_id = str(uuid.uuid4())
headers = {
    "lang": "py",  # the protocol's field, whatever language publishes
    "task": "coderm.orchestrator.submit_job",
    "id": task_id,
    "root_id": task_id,
    "parent_id": None,
    "group": None,
    "retries": 0,
    "argsrepr": "()",
    "kwargsrepr": repr({"idempotency_key": job["idempotency_key"]}),
    "origin": "enqueue_with_amqp.py",
}
body = json.dumps([[], job, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])

# Declared as the workers declare it (a durable queue bound to a direct exchange of the same name),
# so the message is kept even if no worker has started yet.
queue = Queue("orchestrator", Exchange("orchestrator", type="direct"), routing_key="orchestrator")
with Connection(BROKER_URL, connect_timeout=10) as connection:
    connection.Producer().publish(
        body,
        exchange=queue.exchange,
        routing_key=queue.routing_key,
        declare=[queue],
        headers=headers,
        content_type="application/json",  # the only content type the workers accept
        content_encoding="utf-8",
        delivery_mode=2,  # persistent
        retry=True,
    )
print(job["idempotency_key"])
