# The two commands a newcomer needs: `make demo` and `make test`. Both bootstrap first.
VENV ?= .venv
PY := $(VENV)/bin/python
# A per-run DDS domain keeps parallel runs (and other machines on the LAN) apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test test-fast info clean

setup:
	@bash tools/bootstrap.sh

# The simulated camera + the grounding node + scripted spoken commands; results in demo_out/.
demo: setup
	$(VENV)/bin/refseg demo --out demo_out

test: setup
	$(PY) -m pytest -q test

info: setup
	$(VENV)/bin/refseg info

clean:
	rm -rf build install log demo_out
