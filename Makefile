# RelaysController: every build and test step is a target here; CI calls `make test`.
#
#   make run        set up, build, run the simulated device with its platform on 127.0.0.1
#   make test       set up, build everything, run every test
#   make unix | natmod | firmware | deps
#   make test-c | test-mpy | test-platform | test-rest | test-e2e | test-hil | test-ppp | bench
#   make firmware BOARD=RELAYS_PICO_PPP   the Pico with lwIP over PPP (boards/), for the emulator
#   make release KEY=keys/acme IMAGE=app.bin VERSION=1.2.0 COUNTER=7 [TENANT=..] (signed OTA)
#   make test-power-cut | test-flaps   the full power-cut sweep and platform flap runs
#
# Everything fetched or built lands in .cache/ (git-ignored) and is reused.
# MPY_DIR=/path/to/micropython builds against your own full checkout instead.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CACHE := $(ROOT)/.cache
BOARD ?= RPI_PICO
JOBS ?= $(shell nproc)

ifdef MPY_DIR
MPY_DIR := $(abspath $(MPY_DIR))
OWN_MPY := 1
else
MPY_DIR := $(CACHE)/src/micropython-1.25.0
endif

STAMPS := $(CACHE)/stamps
VENV := $(CACHE)/venv
PY := $(VENV)/bin/python
UNIX_BUILD := $(CACHE)/build/unix
UNIX_BIN := $(UNIX_BUILD)/micropython
MPY_CROSS := $(MPY_DIR)/mpy-cross/build/mpy-cross
FW_BUILD := $(CACHE)/build/rp2-$(BOARD)
# a board of this repo (boards/NAME, e.g. RELAYS_PICO_PPP) is built with BOARD_DIR=
REPO_BOARD := $(wildcard $(ROOT)/boards/$(BOARD)/mpconfigboard.cmake)
REPO_BOARD_DIR := $(if $(REPO_BOARD),$(ROOT)/boards/$(BOARD))
PPP_BOARD := RELAYS_PICO_PPP
PPP_UF2 := $(CACHE)/build/rp2-$(PPP_BOARD)/firmware.uf2
UF2 := $(FW_BUILD)/firmware.uf2
NATMOD_X64 := $(CACHE)/build/natmod-x64/relaygpio_natmod.mpy
NATMOD_ARM := $(CACHE)/build/natmod-armv6m/relaygpio.mpy
MPYLIB_STUB := $(CACHE)/mpylib-stub

RELAYGPIO_SRC := $(wildcard $(ROOT)/cmodules/relaygpio/*.[ch])
PY_SRC := $(shell find $(ROOT)/python -name '*.py' 2>/dev/null)

# the unix port without micropython-lib or btree submodules, with TLS from mbedtls
UNIX_ARGS := BUILD=$(UNIX_BUILD) USER_C_MODULES=$(ROOT)/cmodules \
	FROZEN_MANIFEST=$(ROOT)/tools/manifest_unix.py MPY_LIB_DIR=$(MPYLIB_STUB) \
	MICROPY_PY_BTREE=0

.PHONY: all deps run demo release test unix natmod firmware test-c test-mpy test-platform test-rest test-e2e test-hil test-ppp bench bench-smoke clean-firmware help \
	test-power-cut test-flaps

all: unix natmod firmware

help:
	@sed -n '2,10p' $(ROOT)/Makefile

# ---- set-up ----

deps: $(STAMPS)/host $(STAMPS)/sources $(STAMPS)/venv $(STAMPS)/microdot $(STAMPS)/npm

$(STAMPS)/host: $(ROOT)/tools/deps.sh
	$(ROOT)/tools/deps.sh host
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/sources: $(STAMPS)/host
ifndef OWN_MPY
	$(ROOT)/tools/deps.sh mpy
endif
	@mkdir -p $(MPYLIB_STUB) && echo "placeholder: micropython-lib is not used" > $(MPYLIB_STUB)/README.md
	@touch $@

$(STAMPS)/venv: $(ROOT)/tools/requirements.txt $(ROOT)/reference_platform/requirements.txt $(ROOT)/bench/requirements.txt $(STAMPS)/host
	$(ROOT)/tools/deps.sh venv
	@touch $@

$(STAMPS)/microdot: $(STAMPS)/venv $(ROOT)/tools/deps.sh
	$(ROOT)/tools/deps.sh microdot
	@touch $@

$(STAMPS)/npm: $(ROOT)/tools/package.json $(ROOT)/tools/package-lock.json $(STAMPS)/host
	$(ROOT)/tools/deps.sh npm
	@touch $@

$(STAMPS)/rp2-sources: $(STAMPS)/sources
ifndef OWN_MPY
	$(ROOT)/tools/deps.sh picosdk picotool
else
	$(ROOT)/tools/deps.sh picotool
endif
	@touch $@

# lwIP for the PPP board (a full checkout brings its own lib/lwip submodule)
$(STAMPS)/lwip: $(STAMPS)/rp2-sources
ifndef OWN_MPY
	$(ROOT)/tools/deps.sh lwip
endif
	@touch $@

# ---- builds ----

$(MPY_CROSS): $(STAMPS)/sources
	$(MAKE) -C $(MPY_DIR)/mpy-cross -j$(JOBS) >/dev/null
	@touch $@

unix: $(UNIX_BIN)
$(UNIX_BIN): $(STAMPS)/sources $(STAMPS)/microdot $(MPY_CROSS) $(RELAYGPIO_SRC) $(ROOT)/cmodules/relaygpio/micropython.mk \
		$(PY_SRC) $(ROOT)/tools/manifest_unix.py $(ROOT)/python/manifest.py
	$(MAKE) -C $(MPY_DIR)/ports/unix -j$(JOBS) $(UNIX_ARGS)
	@touch $@

NATMOD_DEPS := $(STAMPS)/venv $(STAMPS)/sources $(RELAYGPIO_SRC) $(ROOT)/natmod/relaygpio_natmod.c $(ROOT)/natmod/Makefile
# build_natmod ARCH MOD: the .mpy is taken from the build folder, not the source tree
define build_natmod
	PATH=$(VENV)/bin:$$PATH $(MAKE) -C $(ROOT)/natmod ARCH=$(1) MPY_DIR=$(MPY_DIR) \
		BUILD=$(CACHE)/build/natmod-$(1) $(CACHE)/build/natmod-$(1)/$(2).native.mpy
	cp $(CACHE)/build/natmod-$(1)/$(2).native.mpy $(CACHE)/build/natmod-$(1)/$(2).mpy
	@echo "natmod $(1): $$(stat -c %s $(CACHE)/build/natmod-$(1)/$(2).mpy) bytes"
endef

natmod: $(NATMOD_X64) $(NATMOD_ARM)
$(NATMOD_X64): $(NATMOD_DEPS)
	$(call build_natmod,x64,relaygpio_natmod)
$(NATMOD_ARM): $(NATMOD_DEPS)
	$(call build_natmod,armv6m,relaygpio)

# A BOARD that needs submodules we cannot fetch here (RPI_PICO_W: cyw43-driver,
# btstack) must come from a full checkout: make firmware BOARD=RPI_PICO_W MPY_DIR=...
FW_CMAKE_ARGS := -DMICROPY_LIB_DIR=$(MPYLIB_STUB) -Dpicotool_DIR=$(CACHE)/picotool/picotool

firmware: $(UF2)
$(UF2): $(STAMPS)/rp2-sources $(STAMPS)/microdot $(MPY_CROSS) $(RELAYGPIO_SRC) $(ROOT)/cmodules/relaygpio/micropython.cmake \
		$(ROOT)/cmodules/micropython.cmake $(PY_SRC) $(ROOT)/manifest.py $(ROOT)/python/manifest.py \
		$(wildcard $(ROOT)/boards/$(BOARD)/*) $(if $(REPO_BOARD),$(STAMPS)/lwip)
	@$(if $(REPO_BOARD),test -n "$$(ls -A $(MPY_DIR)/lib/lwip 2>/dev/null)" || \
		{ echo "error: BOARD=$(BOARD) needs lwIP in $(MPY_DIR)/lib/lwip (tools/deps.sh lwip)" >&2; exit 1; }, \
		$(ROOT)/tools/check_board.sh $(MPY_DIR) $(BOARD))
	@# rp2 runs cmake only when its build folder has no Makefile: redo it when module lists change
	@if [ -f $(FW_BUILD)/Makefile ] && [ -n "$$(find $(ROOT)/cmodules -name '*.cmake' -newer $(FW_BUILD)/Makefile)" ]; then \
		rm -rf $(FW_BUILD); fi
	@# CMAKE_ARGS goes in the environment: as a make argument it would replace the port's own
	@# (which carry BOARD_DIR) and the board would be silently dropped
	CMAKE_ARGS="$(FW_CMAKE_ARGS)" $(MAKE) -C $(MPY_DIR)/ports/rp2 -j$(JOBS) BOARD=$(BOARD) BUILD=$(FW_BUILD) \
		$(if $(REPO_BOARD_DIR),BOARD_DIR=$(REPO_BOARD_DIR)) \
		USER_C_MODULES=$(ROOT)/cmodules/micropython.cmake FROZEN_MANIFEST=$(ROOT)/manifest.py
	@touch $@
	@$(ROOT)/tools/firmware_report.sh $(FW_BUILD)

clean-firmware:
	rm -rf $(FW_BUILD)

# ---- tests ----

CTEST_BUILD := $(CACHE)/build/ctest

test-c:
	$(MAKE) -C $(ROOT)/tests/c all BUILD=$(CTEST_BUILD)

RELAYGPIO_TESTS := $(addprefix $(ROOT)/tests/mpy/,test_relaygpio_api.py test_relaygpio_errors.py test_parity.py)
# the application's own modules: independent of the relaygpio implementation, run once
APP_TESTS = $(filter-out $(RELAYGPIO_TESTS),$(wildcard $(ROOT)/tests/mpy/test_*.py))
MPY_RUN = MICROPYPATH=$(ROOT)/tests/mpy:$(ROOT)/python:$(CACHE)/build/natmod-x64:.frozen $(UNIX_BIN) $(ROOT)/tests/mpy/runner.py

# the application's Python on the MicroPython unix build with the C module inside
# parity compares the C module and the natmod with the Python twin, never the twin with itself
test-mpy: unix natmod
	@set -e; for impl in c natmod; do \
		echo "== MicroPython tests, relaygpio implementation: $$impl"; \
		$(MPY_RUN) $$impl $(RELAYGPIO_TESTS); \
	done
	@echo "== MicroPython tests, relaygpio implementation: python"
	@$(MPY_RUN) python $(filter-out %/test_parity.py,$(RELAYGPIO_TESTS))
	@echo "== MicroPython tests of the application modules"
	@$(MPY_RUN) c $(APP_TESTS)

# skip_is_failure: under make a skipped test fails (with its reason); -rfEs lists the reasons
PYTEST := PYTHONPATH=$(ROOT)/tests/plugins $(PY) -m pytest -q -rfEs -p no:cacheprovider -p skip_is_failure

# the reference platform (CPython, real server on 127.0.0.1)
test-platform: $(STAMPS)/venv
	cd $(ROOT) && $(PYTEST) tests/plugins tests/platform

# the device REST API on the unix build over real sockets: JWT, RBAC, rate limits, bodies, metrics
test-rest: unix $(STAMPS)/venv
	cd $(ROOT) && $(PYTEST) tests/rest

# the device (unix build) against the reference platform: real processes on 127.0.0.1
test-e2e: unix $(STAMPS)/venv
	cd $(ROOT) && $(PYTEST) tests/e2e

# a power cut at every mutating filesystem operation of the device's writes (test-e2e runs a
# seeded sample), and SIGKILL of the device under a REST write load
test-power-cut: unix $(STAMPS)/venv
	cd $(ROOT) && POWER_CUT_FULL=1 $(PYTEST) -s tests/e2e/test_power_cut.py tests/e2e/test_state_crash.py

# 50 platform down/up cycles while relays switch and alarms are raised (test-e2e runs 8)
test-flaps: unix $(STAMPS)/venv
	cd $(ROOT) && FLAPS_FULL=1 $(PYTEST) -s tests/e2e/test_flaps.py

# the PPP board (lwIP over PPP on UART0) in the emulated RP2040, its network joined through a
# PPP peer and libslirp to the host's 127.0.0.1 (no root): tests/ppp
test-ppp: $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/host
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && PPP_UF2=$(PPP_UF2) $(PYTEST) tests/ppp

# the UF2 booted in an emulated RP2040
test-hil: firmware natmod $(STAMPS)/venv $(STAMPS)/npm
	cd $(ROOT) && $(PYTEST) -s tests/hil

# benchmarks: figures and goals printed, results under bench/results (git-ignored)
bench: firmware unix natmod $(STAMPS)/venv $(STAMPS)/npm
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && $(PY) bench/run_all.py

# tiny counts, so the bench scripts keep working; fails only if a script cannot run
bench-smoke: firmware unix natmod $(STAMPS)/venv $(STAMPS)/npm
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && $(PY) bench/run_all.py --smoke

test: deps test-c test-mpy test-platform test-rest test-e2e test-hil test-ppp bench-smoke
	@echo "all tests passed"

# ---- releases: signed offline by their owner (the platform never signs) ----

# a key pair at $(KEY).key/.pub on first use, then $(IMAGE) signed into <image>-<version>.release.json
BOARD_NAMES ?= RPI_PICO_W
release: $(STAMPS)/venv
	@test -n "$(KEY)" -a -n "$(IMAGE)" -a -n "$(VERSION)" -a -n "$(COUNTER)" || \
		{ echo "usage: make release KEY=prefix IMAGE=file VERSION=x.y.z COUNTER=n" \
		"[BOARD_NAMES=RPI_PICO_W] [KIND=app] [TENANT=t [NAMESPACE=ns]]"; exit 2; }
	@test -f "$(KEY).key" || $(PY) $(ROOT)/tools/release.py keygen --out "$(KEY)"
	$(PY) $(ROOT)/tools/release.py sign --key "$(KEY).key" --image "$(IMAGE)" \
		--version "$(VERSION)" --counter "$(COUNTER)" --kind "$(or $(KIND),app)" \
		$(foreach b,$(BOARD_NAMES),--board $(b)) $(if $(TENANT),--tenant $(TENANT)) \
		$(if $(NAMESPACE),--namespace $(NAMESPACE))

# ---- the simulated device ----

# the reference platform, an NTP responder and the device (unix build) on 127.0.0.1
run: unix $(STAMPS)/venv
	$(PY) $(ROOT)/tools/run_simulation.py

# the relay core alone: a pulse, an interlock change-over and a debounced button
demo: unix
	$(UNIX_BIN) $(ROOT)/tools/demo.py
