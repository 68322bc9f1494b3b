"""verdict.py - the ok/FAIL lines and exit code of the Python assertions of script tests.

    from verdict import check, done   # with tests/ on sys.path
    check(value > bar, f"what {value} > {bar}")
    done()                            # exits 1 if any check failed
"""
import sys

failed = 0


def check(ok, what):
    """Print one verdict line; count a failure."""
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


def done():
    sys.exit(1 if failed else 0)
