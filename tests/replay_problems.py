"""A small replay problem set whose right answers are known, shared by the end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

ADD_TESTS = [
    "import unittest\n\nclass TestAdd(unittest.TestCase):\n    def test_small(self):\n        self.assertEqual(add(1, 2), 3)\n",
    "import unittest\nfrom solution import add\n\nclass TestAdd(unittest.TestCase):\n    def test_zero(self):\n"
    "        self.assertEqual(add(0, 0), 0)\n\nif __name__ == '__main__':\n    unittest.main()\n",
    "this is not a test",
]
ADD_SOLUTIONS = [
    "def add(a, b):\n    return a - b\n",  # passes only the zero test
    "def add(a, b):\n    return a + b\n",  # right
    "def add(a, b)\n    return a + b\n",  # syntax error: invalid
    "def add(a, b):\n    return 0\n",  # passes only the zero test
]


def replay_problems(count: int) -> list[dict[str, object]]:
    return [
        {
            "task_id": f"add/{i}",
            "question": "Write a function add(a, b) that returns a + b.",
            "solutions": ADD_SOLUTIONS,
            "unit_tests": ADD_TESTS,
        }
        for i in range(count)
    ]


def write_replay_file(path: Path, count: int = 3) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in replay_problems(count)))
    return path
