# Runs one module of CPython's `test` package and reports every test on stderr, one line each,
# so that `cargo xtask compat` can count them (written by h's xtask; not part of CPython).
#
#   python3.11 -I -S cpython_driver.py test_json
#
# Lines (tab-separated, each starting with "@@compat"):
#   @@compat  start  TEST_ID
#   @@compat  needs  process|network  TEST_ID     the test started a process / made an AF_INET(6) socket
#   @@compat  end    pass|fail|error|skip  TEST_ID  DETAIL
#   @@compat  done
# They go to a duplicate of descriptor 2 taken at start, the descriptor on which a host reports a
# refused call, so a refusal line lands between the start and end of the test that caused it.
# The wrappers below only record: they call the original function with the same arguments.
import os
import sys
import traceback
import unittest

REPORT = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
CURRENT = ["(module)"]


def emit(*fields):
    text = "\t".join(str(field).replace("\t", " ").replace("\n", " | ") for field in fields)
    REPORT.write("@@compat\t" + text + "\n")
    REPORT.flush()


def recording(kind, function):
    def wrapper(*args, **kwargs):
        emit("needs", kind, CURRENT[0])
        return function(*args, **kwargs)

    wrapper.__wrapped__ = function
    return wrapper


def install_recorders():
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            setattr(os, name, recording("process", getattr(os, name)))
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = recording("process", _posixsubprocess.fork_exec)
    except ImportError:
        pass
    import socket

    original_init = socket.socket.__init__

    def socket_init(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
            emit("needs", "network", CURRENT[0])
        return original_init(self, family, type, proto, fileno)

    socket.socket.__init__ = socket_init


def short(err):
    lines = traceback.format_exception_only(err[0], err[1])
    return (lines[-1] if lines else repr(err[1])).strip()[:300]


class Result(unittest.TestResult):
    def startTest(self, test):
        super().startTest(test)
        CURRENT[0] = test.id()
        self.outcome = None
        emit("start", test.id())

    def _set(self, status, detail=""):
        if self.outcome is None or self.outcome[0] == "pass":
            self.outcome = (status, detail)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set("pass")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set("pass", "expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("fail", "unexpected success")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase) and test.id() == CURRENT[0]:
            self._set("skip", reason)
        else:
            emit("end", "skip", test.id() if isinstance(test, unittest.TestCase) else str(test), reason)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record_error(test, "fail", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record_error(test, "error", err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.outcome = (("skip" if issubclass(err[0], unittest.SkipTest) else "fail"), short(err))

    def _record_error(self, test, status, err):
        if isinstance(test, unittest.TestCase) and test.id() == CURRENT[0]:
            self.outcome = (status, short(err))
        else:
            # setUpClass, setUpModule and friends: reported under their own name.
            emit("end", status, str(test), short(err))

    def stopTest(self, test):
        super().stopTest(test)
        status, detail = self.outcome or ("error", "no outcome")
        emit("end", status, test.id(), detail)
        CURRENT[0] = "(module)"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: cpython_driver.py TEST_MODULE")
    module = sys.argv[1]
    install_recorders()
    from test import support

    support.use_resources = []  # like regrtest without -u: no network, cpu or largefile resources
    support.verbose = 0
    try:
        suite = unittest.defaultTestLoader.loadTestsFromName("test." + module)
    except BaseException as error:  # an import-time failure counts as one failed "test"
        emit("end", "error", module + " (import)", repr(error)[:300])
        emit("done")
        return
    suite.run(Result())
    emit("done")


main()
