"""Shared helpers of the `import moetb` module tests (python/, docs/python.md): run the
moetb binary (MOETB_BINARY, set by ctest) for the CLI's answer on the same trace, and
scratch folders. The module is imported from PYTHONPATH (ctest sets it to the build's
python/ folder)."""
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True

import moetb  # noqa: E402,F401  (fails the whole suite at once if the module is not importable)

BINARY = os.environ.get("MOETB_BINARY")


def cli(*args, check=True):
    """(exit code, stdout, stderr) of `moetb ARGS`."""
    p = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("moetb %s failed: %s" % (" ".join(map(str, args)), p.stderr))
    return p.returncode, p.stdout, p.stderr


def cli_json(*args):
    return json.loads(cli(*args)[1])


def cli_error(*args):
    """The one-line message of a failing command, without its "moetb CMD: error: " prefix."""
    rc, _, err = cli(*args, check=False)
    assert rc != 0, "moetb %s should fail" % " ".join(map(str, args))
    line = err.strip().splitlines()[-1]
    return line.split(": error: ", 1)[1]


def temp_dir(test):
    d = tempfile.TemporaryDirectory(prefix="moetb-module-test-")
    test.addCleanup(d.cleanup)
    return d.name


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
