# The two commands of the README. Both install what they need first (scripts/setup-host).
RESULTS ?= thunder-results

.PHONY: setup suites test lint

setup:
	sh scripts/setup-host

# The conformance suites against the reference Raspberry Pi 3 image in QEMU.
suites: setup
	python3 -m pytest suites --thunder-target=rpi3 --thunder-results=$(RESULTS)

# The project's own tests: unit, and end to end on QEMU with real Thunder.
test: setup
	python3 -m pytest tests -n 2

lint:
	ruff check . && ruff format --check .
