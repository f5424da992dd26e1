# Prepended to each rendered testScript before mypy runs, as the NixOS test driver prepends its
# type hints (nixos/lib/test-script-prepend.py and one line per machine): the names a test
# script gets from the driver, typed.
from typing import Callable, ContextManager

from test_driver.machine import Machine

start_all: Callable[[], None]
subtest: Callable[[str], ContextManager[None]]
machine: Machine
