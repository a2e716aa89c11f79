"""Suite-wide Hypothesis settings.

No deadline: a per-example time limit is a wall-time assertion, and a loaded CI
machine would turn it into a flaky failure. Examples stay random on every run (that
is the fuzzing); a failure prints the blob that reproduces it.
"""
from hypothesis import settings

settings.register_profile("queuetool", deadline=None, print_blob=True)
settings.load_profile("queuetool")
