"""Submit a job to coderm by task name with Celery, without importing coderm.

Run it as `BROKER_URL=amqp://... RESULT_BACKEND=redis://... python enqueue_with_celery.py`.
"""

import os
import uuid

from celery import Celery

app = Celery(broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
app.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])

job = {
    "problems": [
        {
            "task_id": "add",
            "question": "Write a function add(a, b) that returns a + b.",
            "solutions": ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return 0\n"],
            "unit_tests": [
                "import unittest\n\n"
                "class TestAdd(unittest.TestCase):\n"
                "    def test_add(self):\n"
                "        self.assertEqual(add(2, 3), 5)\n"
            ],
        }
    ],
    "config": {"n_solutions": 2, "n_tests": 1},
    "idempotency_key": f"example-{uuid.uuid4()}",
}

result = app.send_task("coderm.orchestrator.submit_job", kwargs=job, queue="orchestrator")
# The task returns the job id once a worker has written the job; a rejected job returns none.
print(result.get(timeout=60))
