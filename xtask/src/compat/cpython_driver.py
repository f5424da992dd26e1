# Runs one module of CPython's `test` package and reports every test on stderr, one line each,
# so that `cargo xtask compat` can count them (written by h's xtask; not part of CPython).
#
#   python3.11 -I -S cpython_driver.py test_json [--skip FILE | --only FILE]
#
# FILE has one test id a line. --skip names tests an earlier run of the module already reported:
# the xtask runs a module again from the next test when a run ended before its last one (a crash,
# or the per-test time limit below), so one hung or crashing test does not take the rest with it.
# --only runs the named tests alone (the xtask's second look at a failure with no refusal of its
# own: a host reports each refused call once per run).
# Each test gets PER_TEST seconds; then faulthandler (a C thread, invisible to `threading`)
# prints "Timeout (...)!" with every thread's traceback and ends the process.
#
# Lines (tab-separated, each starting with "@@compat"):
#   @@compat  start  TEST_ID
#   @@compat  needs  process|network  TEST_ID     the test started a process / made an AF_INET(6) socket
#   @@compat  end    pass|fail|error|skip  TEST_ID  DETAIL
#   @@compat  done
# They go to a duplicate of descriptor 2 taken at start, the descriptor on which a host reports a
# refused call, so a refusal line lands between the start and end of the test that caused it.
# The wrappers below only record: they call the original function with the same arguments.
import faulthandler
import os
import sys
import traceback
import unittest

REPORT = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
CURRENT = ["(module)"]
PER_TEST = 60


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
    """The exception's last line (for a loader's ImportError, whose message is a whole traceback:
    its first and last lines), and where it was raised: `... @ FILE:LINE in FUNCTION: CODE`."""
    lines = traceback.format_exception_only(err[0], err[1])
    text = "".join(lines).strip() or repr(err[1])
    parts = [line.strip() for line in text.splitlines() if line.strip()]
    where = ""
    if len(parts) > 1:
        # A traceback inside the message: its innermost frame is where it happened.
        frames = [at for at, line in enumerate(parts) if line.startswith('File "')]
        if frames:
            at = frames[-1]
            code = parts[at + 1] if at + 1 < len(parts) - 1 else ""
            where = parts[at].replace('File "', "").replace('", line ', ":").replace(", in ", " in ")
            where = os.path.basename(where) + ": " + code
        text = parts[0] + " | " + parts[-1]
    elif len(err) > 2 and err[2] is not None:
        frames = traceback.extract_tb(err[2])
        if frames:
            frame = frames[-1]
            where = "%s:%s in %s: %s" % (os.path.basename(frame.filename), frame.lineno, frame.name, frame.line or "")
    if where:
        text = text[:300] + " @ " + where[:200]
    return text[:520]


class Result(unittest.TestResult):
    def startTest(self, test):
        super().startTest(test)
        CURRENT[0] = test.id()
        self.outcome = None
        emit("start", test.id())
        faulthandler.dump_traceback_later(PER_TEST, exit=True, file=REPORT)

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
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        status, detail = self.outcome or ("error", "no outcome")
        emit("end", status, test.id(), detail)
        CURRENT[0] = "(module)"


def flatten(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from flatten(test)
        else:
            yield test


def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] not in ("--skip", "--only")):
        sys.exit("usage: cpython_driver.py TEST_MODULE [--skip FILE | --only FILE]")
    module = sys.argv[1]
    mode, ids = None, set()
    if len(sys.argv) == 4:
        mode = sys.argv[2]
        with open(sys.argv[3], encoding="utf-8") as lines:
            ids = {line.strip() for line in lines if line.strip()}
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
    if mode is not None:
        # A flat suite keeps unittest's class and module fixtures (it tracks the previous class).
        keep = (lambda test: test.id() not in ids) if mode == "--skip" else (lambda test: test.id() in ids)
        suite = unittest.TestSuite(test for test in flatten(suite) if keep(test))
    suite.run(Result())
    emit("done")


main()
