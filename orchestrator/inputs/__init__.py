"""What a job is made of: problem files (problem_files), published generations joined to them
(replay_files), and the built-in benchmarks (benchmarks).
"""
