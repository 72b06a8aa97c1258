import sys
from pathlib import Path

# Lets the tests here share `replay_problems`.
sys.path.insert(0, str(Path(__file__).parent))
