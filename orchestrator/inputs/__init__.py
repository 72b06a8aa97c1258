"""What a job is made of: problem files (problem_files), published generations joined to them
(replay_files), the built-in benchmarks (benchmarks), and EvalPlus's data as their ground truth
(evalplus_files).
"""
