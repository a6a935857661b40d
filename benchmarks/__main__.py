"""`python -m benchmarks`: the prediction suite (see benchmarks/suite.py)."""

from benchmarks.suite import main

main()
