"""Running tasks: the Celery app and its queues (celery_app), the schema of every message
(messages), the base of every task (task_base), and the in-process worker of `coderm run` (embedded).
"""
