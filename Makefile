# The two commands a newcomer needs: `make demo` and `make test`. Every target but `clean` and
# `help` sets up the venv first (a repeat setup only checks a stamp). `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
# DDS stays on this machine; test/conftest.py also picks a random ROS_DOMAIN_ID per test run,
# which keeps parallel runs apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test test-fast info clean help

setup:  ## create .venv with the pinned dependencies and this package (tools/bootstrap.sh)
	@bash tools/bootstrap.sh

demo: setup  ## simulated camera + grounding node + scripted spoken commands; results in demo_out/
	$(VENV)/bin/refseg demo --out demo_out

test: setup  ## the full test suite (what CI's .ci/run calls)
	$(PY) -m pytest -q test

# `ros` tests need a ROS 2 install or start ROS processes. The few ROS-free tests marked `slow`
# (training runs, the shipped model on a rendered test split, paper-size models) each take as long
# as dozens of the others together, so test-fast leaves them out too, to stay under a minute;
# `make test` runs them.
test-fast: setup  ## every ROS-free test except the slow ones (pytest -m "not ros and not slow")
	$(PY) -m pytest -q -m "not ros and not slow" test

info: setup  ## versions, device, ROS and weight packages found
	$(VENV)/bin/refseg info

clean:  ## remove colcon's build/install/log and demo_out/
	rm -rf build install log demo_out

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):[^#]*## /  \1\t/' | expand -t 14
