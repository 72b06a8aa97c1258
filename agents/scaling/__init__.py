"""Dynamic unit-test scaling (paper §3.2), in one place:

budget       how many tests each problem gets: fixed, threshold, greedy (pure)
probe        the difficulty probe: a logistic model on the policy's hidden states (pure)
features     those hidden states, from the policy's backend
difficulty   the task that stores a problem's features
probes       trained probes in the database, versioned
allocation   the workflow's side: a problem's tests, or a whole job's at once
"""
