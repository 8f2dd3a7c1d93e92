# RelaysController: every build and test step is a target here; CI calls `make test`.
# `make help` lists the targets: each one's `## ...` comment on its rule line is its help text,
# so a new target gets listed by writing one.
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
STOCK_BUILD := $(CACHE)/build/rp2-RPI_PICO-stock
STOCK_UF2 := $(STOCK_BUILD)/firmware.uf2
NATMOD_X64 := $(CACHE)/build/natmod-x64/relaygpio_natmod.mpy
NATMOD_ARM := $(CACHE)/build/natmod-armv6m/relaygpio.mpy
MPYLIB_STUB := $(CACHE)/mpylib-stub

RELAYGPIO_SRC := $(wildcard $(ROOT)/cmodules/relaygpio/*.[ch])
PY_SRC := $(shell find $(ROOT)/python -name '*.py' 2>/dev/null)

# the unix port without micropython-lib or btree submodules, with TLS from mbedtls
UNIX_ARGS := BUILD=$(UNIX_BUILD) USER_C_MODULES=$(ROOT)/cmodules \
	FROZEN_MANIFEST=$(ROOT)/tools/manifest_unix.py MPY_LIB_DIR=$(MPYLIB_STUB) \
	MICROPY_PY_BTREE=0

.PHONY: all deps run demo release test unix natmod firmware firmware-stock test-c test-mpy test-platform test-rest test-e2e test-web web-screenshot test-mqtt test-hil test-ppp bench bench-smoke fuzz clean clean-firmware help \
	test-power-cut test-flaps

all: unix natmod firmware ## build the unix port, the natmods and the RP2040 firmware

help: ## this list, made from each target's own comment
	@awk -F ':.*## ' '/^[a-zA-Z0-9_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  (MPY_DIR=/path/to/micropython: build against your own full checkout)"

# build output and bench results; the fetched sources, venv and npm packages stay
clean: ## remove build output (.cache/build) and bench results
	rm -rf $(CACHE)/build $(ROOT)/bench/results

# ---- set-up ----

deps: $(STAMPS)/host $(STAMPS)/sources $(MPY_PATCHED) $(STAMPS)/venv $(STAMPS)/microdot $(STAMPS)/npm $(STAMPS)/browser ## fetch and set up sources, venv, microdot, npm, browser

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

# headless Chromium and chromedriver from Debian, for the web page tests
$(STAMPS)/browser: $(ROOT)/tools/deps.sh $(STAMPS)/host
	$(ROOT)/tools/deps.sh browser
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

# the project's fixes to the MicroPython source (patches/micropython): applied to the fetched
# tree only; a user's own tree (MPY_DIR=) is left as it is, with a notice when the PPP board builds
MPY_PATCHES := $(wildcard $(ROOT)/patches/micropython/*.patch)
ifndef OWN_MPY
MPY_PATCHED := $(STAMPS)/mpy-patches
$(MPY_PATCHED): $(STAMPS)/sources $(MPY_PATCHES) $(ROOT)/tools/deps.sh
	$(ROOT)/tools/deps.sh mpy-patches
	@touch $@
endif

# ---- builds ----

$(MPY_CROSS): $(STAMPS)/sources
	$(MAKE) -C $(MPY_DIR)/mpy-cross -j$(JOBS)
	@touch $@

unix: $(UNIX_BIN) ## build the MicroPython unix port with the C module and the frozen app
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

natmod: $(NATMOD_X64) $(NATMOD_ARM) ## build the relaygpio native modules (x64, armv6m)
$(NATMOD_X64): $(NATMOD_DEPS)
	$(call build_natmod,x64,relaygpio_natmod)
$(NATMOD_ARM): $(NATMOD_DEPS)
	$(call build_natmod,armv6m,relaygpio)

# A BOARD that needs submodules we cannot fetch here (RPI_PICO_W: cyw43-driver,
# btstack) must come from a full checkout: make firmware BOARD=RPI_PICO_W MPY_DIR=...
FW_CMAKE_ARGS := -DMICROPY_LIB_DIR=$(MPYLIB_STUB) -Dpicotool_DIR=$(CACHE)/picotool/picotool
PICOTOOL := $(CACHE)/picotool/picotool/picotool

firmware: $(UF2) ## build the RP2040 firmware (BOARD=RPI_PICO by default)
$(UF2): $(STAMPS)/rp2-sources $(STAMPS)/microdot $(MPY_CROSS) $(RELAYGPIO_SRC) $(ROOT)/cmodules/relaygpio/micropython.cmake \
		$(ROOT)/cmodules/micropython.cmake $(PY_SRC) $(ROOT)/manifest.py $(ROOT)/python/manifest.py \
		$(wildcard $(ROOT)/boards/$(BOARD)/*) $(if $(REPO_BOARD),$(STAMPS)/lwip $(MPY_PATCHED) $(MPY_PATCHES))
	@$(if $(and $(REPO_BOARD),$(OWN_MPY)),echo "notice: $(MPY_DIR) is not patched (patches/micropython): the first request on a new connection may wait up to 250 ms")
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
	@$(ROOT)/tools/check_flash_layout.sh $(PICOTOOL) $@ || { rm -f $@; exit 1; }
	@touch $@
	@$(ROOT)/tools/firmware_report.sh $(FW_BUILD)

# the stock RPI_PICO firmware a natmod user keeps: the same MicroPython source, no user C
# modules, the port's own frozen modules minus micropython-lib (tools/manifest_stock.py)
firmware-stock: $(STOCK_UF2) ## the stock RPI_PICO firmware (no user C modules), for the natmod
$(STOCK_UF2): $(STAMPS)/rp2-sources $(MPY_CROSS) $(ROOT)/tools/manifest_stock.py
	CMAKE_ARGS="$(FW_CMAKE_ARGS)" $(MAKE) -C $(MPY_DIR)/ports/rp2 -j$(JOBS) BOARD=RPI_PICO \
		BUILD=$(STOCK_BUILD) FROZEN_MANIFEST=$(ROOT)/tools/manifest_stock.py
	@$(ROOT)/tools/check_flash_layout.sh $(PICOTOOL) $@ || { rm -f $@; exit 1; }
	@touch $@
	@$(ROOT)/tools/firmware_report.sh $(STOCK_BUILD)

clean-firmware: ## remove the firmware builds of BOARD and the stock one
	rm -rf $(FW_BUILD) $(STOCK_BUILD)

# ---- tests ----

CTEST_BUILD := $(CACHE)/build/ctest

test-c: ## the C relay core's unit tests
	$(MAKE) -C $(ROOT)/tests/c all BUILD=$(CTEST_BUILD)

RELAYGPIO_TESTS := $(addprefix $(ROOT)/tests/mpy/,test_relaygpio_api.py test_relaygpio_errors.py test_parity.py test_relaygpio_keep.py)
# the application's own modules: independent of the relaygpio implementation, run once
APP_TESTS = $(filter-out $(RELAYGPIO_TESTS),$(wildcard $(ROOT)/tests/mpy/test_*.py))
MPY_RUN = MICROPYPATH=$(ROOT)/tests/mpy:$(ROOT)/python:$(CACHE)/build/natmod-x64:.frozen $(UNIX_BIN) $(ROOT)/tests/mpy/runner.py

# the application's Python on the MicroPython unix build with the C module inside
# parity compares the C module and the natmod with the Python twin, never the twin with itself
test-mpy: unix natmod ## the application's Python on the unix build, every relaygpio implementation
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
test-platform: $(STAMPS)/venv ## the reference platform (real server on 127.0.0.1)
	cd $(ROOT) && $(PYTEST) tests/plugins tests/platform

# the device REST API on the unix build over real sockets: JWT, RBAC, rate limits, bodies, metrics,
# connection floods, and a short seeded fuzz run (1,000 requests)
test-rest: unix $(STAMPS)/venv ## the device REST API on the unix build over real sockets
	cd $(ROOT) && $(PYTEST) tests/rest

# the long fuzz run of the live device API: FUZZ_REQUESTS (10,000) requests, FUZZ_SEED to vary
FUZZ_REQUESTS ?= 10000
fuzz: unix $(STAMPS)/venv ## the long fuzz run of the device API (FUZZ_REQUESTS, FUZZ_SEED)
	cd $(ROOT) && FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(PYTEST) -rA tests/rest/test_device_api_fuzz.py

# the device (unix build) against the reference platform: real processes on 127.0.0.1
test-e2e: unix $(STAMPS)/venv ## the device against the reference platform, real processes
	cd $(ROOT) && $(PYTEST) tests/e2e

# a power cut at every mutating filesystem operation of the device's writes (test-e2e runs a
# seeded sample), and SIGKILL of the device under a REST write load
test-power-cut: unix $(STAMPS)/venv ## the full power-cut sweep and SIGKILL under REST writes
	cd $(ROOT) && POWER_CUT_FULL=1 $(PYTEST) -s tests/e2e/test_power_cut.py tests/e2e/test_state_crash.py

# 50 platform down/up cycles while relays switch and alarms are raised (test-e2e runs 8)
test-flaps: unix $(STAMPS)/venv ## 50 platform down/up cycles while relays switch
	cd $(ROOT) && FLAPS_FULL=1 $(PYTEST) -s tests/e2e/test_flaps.py

# the device's web page in headless Chromium against the simulated device, and the live event
# stream over real sockets (order, gaps, scoping, bounds, a stalled client), on the unix build
test-web: unix $(STAMPS)/venv $(STAMPS)/browser ## the web page in headless Chromium and the event stream
	cd $(ROOT) && $(PYTEST) tests/web

web-screenshot: unix $(STAMPS)/venv $(STAMPS)/browser ## docs/web_page.png from the browser test
	cd $(ROOT) && SCREENSHOT=$(ROOT)/docs/web_page.png $(PYTEST) tests/web/test_web_page_browser.py

# the device (unix build) on a real mosquitto (started by the tests) seen by a paho-mqtt client
test-mqtt: unix $(STAMPS)/venv $(STAMPS)/host ## the device on a real mosquitto: Home Assistant discovery, commands, TLS
	cd $(ROOT) && $(PYTEST) tests/mqtt

# the UF2 of BOARD booted in an emulated RP2040; the natmod also on the stock firmware, from a
# littlefs image built on the host. HIL_PYTEST_ARGS='-m "not network"' leaves out what needs a link
test-hil: firmware firmware-stock natmod $(STAMPS)/venv $(STAMPS)/npm ## the UF2 booted in an emulated RP2040
	cd $(ROOT) && HIL_UF2=$(UF2) HIL_STOCK_UF2=$(STOCK_UF2) $(PYTEST) -s tests/hil $(HIL_PYTEST_ARGS)

# the PPP board (lwIP over PPP on UART0) in the emulated RP2040, its network joined through a
# PPP peer and libslirp to the host's 127.0.0.1 (no root): tests/ppp
test-ppp: $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/host ## the PPP board on the emulated RP2040 with a real network
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && PPP_UF2=$(PPP_UF2) $(PYTEST) tests/ppp

# benchmarks: figures and goals printed, results under bench/results (git-ignored)
bench: firmware unix natmod $(STAMPS)/venv $(STAMPS)/npm ## every benchmark, full counts (bench/results)
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && $(PY) bench/run_all.py

# tiny counts, so the bench scripts keep working; fails only if a script cannot run
bench-smoke: firmware unix natmod $(STAMPS)/venv $(STAMPS)/npm ## every benchmark with tiny counts
	$(MAKE) firmware BOARD=$(PPP_BOARD)
	cd $(ROOT) && $(PY) bench/run_all.py --smoke

test: deps test-c test-mpy test-platform test-rest test-e2e test-web test-mqtt test-hil test-ppp bench-smoke ## set up, build everything, run every test
	@echo "all tests passed"

# ---- releases: signed offline by their owner (the platform never signs) ----

# a key pair at $(KEY).key/.pub on first use, then $(IMAGE) signed into <image>-<version>.release.json
BOARD_NAMES ?= RPI_PICO_W
release: $(STAMPS)/venv ## sign an OTA release: KEY=keys/acme IMAGE=app.bin VERSION=1.2.0 COUNTER=7 [TENANT=..]
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
run: unix $(STAMPS)/venv ## the simulated device with its platform and NTP on 127.0.0.1
	$(PY) $(ROOT)/tools/run_simulation.py

# the relay core alone: a pulse, an interlock change-over and a debounced button
demo: unix ## the relay core alone: a pulse, an interlock change-over, a button
	$(UNIX_BIN) $(ROOT)/tools/demo.py
