"""Runs one program (solution + unit test) and writes the verdict to a pipe the program is not told of.

Started as `python -I -S _pair_harness.py VERDICT_FD` with the payload on stdin.
"""

import io
import json
import os
import sys
import unittest


def main() -> None:
    verdict_fd = int(sys.argv[1])
    write, dumps = os.write, json.dumps
    payload = json.loads(sys.stdin.read())
    loader, runner = unittest.TestLoader(), unittest.TextTestRunner(stream=io.StringIO(), verbosity=0)
    # Not "__main__": like the paper's harness, a solution's `if __name__ == "__main__":` block stays idle.
    namespace: dict[str, object] = {"__name__": "solution"}
    try:
        exec(compile(payload["solution"] + "\n\n" + payload["test"], "<program>", "exec"), namespace)
        result = runner.run(loader.loadTestsFromTestCase(namespace[payload["class_name"]]))  # type: ignore[arg-type]
        verdict: dict[str, object] = {
            "successful": result.wasSuccessful(),
            "tests_run": result.testsRun,
            "failures": len(result.failures),
            "errors": len(result.errors),
        }
    except MemoryError:
        verdict = {"memory": True}
    except BaseException as exc:  # noqa: BLE001 - any escape from the program is an error verdict
        verdict = {"exception": type(exc).__name__}
    write(verdict_fd, dumps(verdict).encode())


main()
