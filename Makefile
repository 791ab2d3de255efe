# One command sets up and runs; one sets up and tests. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: systemd-python builds against libsystemd; systemd-analyze checks the unit;
# evdev builds against the kernel headers; nfcpy's USB readers need libusb; the hub link
# is tested against a real mosquitto broker (started by the tests, never by apt); the Kivy
# checkout screen draws with OpenGL through Mesa (offscreen in tests) and reads touch via mtdev;
# the hub's database at scale is PostgreSQL, tested against a real server the tests start
# (never the one apt may start); the demo test finds its leftover processes with procps; the
# image's fast tier builds its root file system with mmdebstrap and wheels fetched by pip; the
# hub's dashboard is tested in Debian's chromium, driven by playwright (never its own download).
SYSTEM_PACKAGES := gcc pkg-config python3-dev python3-venv libsystemd-dev systemd sqlite3 \
	linux-libc-dev libusb-1.0-0 mosquitto mosquitto-clients openssl \
	libgl1 libegl1 libgl1-mesa-dri libmtdev1 postgresql procps mmdebstrap python3-pip \
	strace e2fsprogs mount chromium fonts-dejavu-core

.PHONY: run test lint typecheck pytest soak bench clean system-packages repeat fresh-check

system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	scripts/run-demo

lint: $(STAMP)
	$(BIN)/ruff check appliance hub tests bench examples
	$(BIN)/ruff format --check appliance hub tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck pytest

soak: $(STAMP)
	$(BIN)/pytest -m soak

bench: $(STAMP)
	$(BIN)/python -m bench

# A flaky test is a bug: run some tests many times in a row and stop at the first failure,
# e.g. `make repeat TESTS=tests/screens COUNT=20`.
TESTS ?= tests/screens
COUNT ?= 20
repeat: $(STAMP)
	@scripts/repeat-tests $(COUNT) $(TESTS)

# `make test` and `make run` on a fresh minimal Debian 12 root, as a new user meets them
# (root only: debootstrap, chroot and bind mounts). See scripts/fresh-check.
fresh-check:
	scripts/fresh-check

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Translations: find every tr._ / tr.n_ string of the screens (.py and .kv, see babel.cfg),
# then merge them into each language's catalog; new strings arrive empty and test_i18n
# names them until they are translated.
.PHONY: messages
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k n_:1,2 --add-comments=TRANSLATORS: \
		--project=appliance -o appliance/locale/appliance.pot .
	$(BIN)/pybabel update -i appliance/locale/appliance.pot -d appliance/locale -D appliance \
		--no-fuzzy-matching --ignore-obsolete

# A flashable Debian arm64 image of the appliance for the Raspberry Pi (root only: mmdebstrap,
# chroot, qemu-user through binfmt_misc). Output in build/image; see image/README.md.
.PHONY: image image-clean image-test image-bench
image:
	image/build

# Build the image, then boot it under qemu-system-aarch64 and drive it (tests/image/):
# provisioning, read-only root, kiosk on screen, a sale to a hub on this machine, the fleet's
# reboot, a power cut, then A/B software updates with the Pi bootloader's tryboot played by
# the harness. Serial console, screenshots and timings in build/image-test/.
image-test: $(STAMP) image
	@scripts/ensure-system-packages qemu-system-arm mtools fdisk openssh-client \
		device-tree-compiler e2fsprogs
	$(BIN)/pytest -m image tests/image -v --timeout=1800 -p no:cacheprovider

# The image's size, build times and boot times, each beside the previous run's.
image-bench: $(STAMP)
	$(BIN)/python -m bench.image

image-clean:
	rm -rf --one-file-system build/image
