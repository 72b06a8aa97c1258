"""The `coderm` command line (main), with the job commands' options and output (jobs, output),
`coderm eval` (eval), metrics and dashboards (metrics) and `coderm probe` (probe).
"""
