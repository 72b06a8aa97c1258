"""A job's life (DESIGN §5):

    submit        the one way in: write the job, start every problem (CLI, client, submit_job task)
    intake        the `submit_job` task, for other services
    plan          a problem's first step: how many solutions and tests it gets
    steps         `advance`: what a problem does next, decided from the database, and sending it
    rules         pure rules of the workflow's shape
    problem_task  the base of the per-problem tasks: stage timing, continuing, failing
    finish        the end of a problem, and of its job
    control       cancel and resume

The steps themselves are tasks of the agents (policy, coderm, voter, scaling.difficulty) and of the
sandbox; dynamic scaling's allocation lives with the rest of scaling in agents/scaling/.
"""
