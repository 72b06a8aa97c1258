"""Reading a job back: progress and per-problem summaries (reports), and scoring against ground
truth (evaluation; the arithmetic is in agents.scoring).
"""
