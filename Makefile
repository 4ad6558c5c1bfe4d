# virtio-mem dynamic memslots for Debian 12's QEMU 7.2: the single entry point.
# Everything happens under build/ (ignored); see README.md.

PREFIX ?= /usr/local
S := scripts

.PHONY: all deps base base-update apply export qemu demo check check-series check-bisect \
        check-asan check-fresh fuzz bench deb deb-install deb-revert install \
        clean help

all: qemu

help:
	@echo "make demo          build, boot a real guest with a 1 TiB device, resize it"
	@echo "make check         every test; ends with 'N passed, N failed'"
	@echo "make qemu          apply the series and build build/qemu-build/qemu-system-x86_64"
	@echo "make apply|export  work tree build/qemu <-> patches/ (see docs/development.md)"
	@echo "make check-series  the series checks alone; make check-bisect: every patch"
	@echo "make check-asan    the series' tests against an ASan+UBSan build (clang)"
	@echo "make check-fresh   'make demo' and 'make check' of the committed HEAD in a"
	@echo "                   pristine Debian 12 chroot (debootstrap; ~40 min, as root;"
	@echo "                   CHECK_FRESH_ENV='CHECK_ASAN=0' passes variables in)"
	@echo "make fuzz SECONDS=N  the virtio-mem fuzz target (libFuzzer), default 60 s"
	@echo "make bench         benchmarks against stock 7.2 and upstream 10.0"
	@echo "make deb           Debian's qemu 7.2 package plus the series (x86 profile)"
	@echo "                   into build/deb/*.deb (13-20 min cold on 2 cores, docs/packaging.md);"
	@echo "                   BASE_VERSION=1:7.2+dfsg-7+deb12uNN builds on another revision"
	@echo "make deb-install   install build/deb's packages over Debian's QEMU and hold them"
	@echo "make deb-revert    go back to Debian's packages, unheld"
	@echo "make base-update   does Debian's archive serve a newer qemu 7.2 than the base?"
	@echo "make install PREFIX=... [DESTDIR=...]"

# the project's packages, then (from the pinned source) Debian's build
# dependencies of qemu, which scripts/build.sh's configuration needs
deps:
	$(S)/deps.sh
	$(S)/fetch-base.sh
	$(S)/build-deps.sh

base: deps
	$(S)/fetch-base.sh

apply: base
	$(S)/apply.sh

export:
	$(S)/export.sh

qemu: apply
	$(S)/build.sh

demo: qemu
	$(S)/demo.sh

check: deps
	$(S)/check.sh

bench: qemu
	bench/run.sh $(PARTS)

check-series: apply
	$(S)/check-series.sh

check-bisect: apply
	$(S)/check-bisect.sh

check-asan: apply
	$(S)/check-asan.sh

# Not part of check: it builds and tests everything again from nothing
check-fresh: deps
	$(S)/check-fresh.sh

SECONDS ?= 60
fuzz: apply
	$(S)/fuzz.sh $(SECONDS)

# Does Debian's archive serve a newer qemu 7.2 than the pinned base?
base-update:
	$(S)/base-update.sh

deb: deps
	$(S)/deb.sh

# make deb's packages over Debian's QEMU, held; and back to Debian's
deb-install:
	$(S)/deb-install.sh

deb-revert:
	$(S)/deb-install.sh --revert

install: qemu
	$(S)/install.sh "$(PREFIX)" "$(DESTDIR)"

clean:
	rm -rf build/qemu-build
