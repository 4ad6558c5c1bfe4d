# virtio-mem dynamic memslots for Debian 12's QEMU 7.2: the single entry point.
# Everything happens under build/ (ignored); see README.md.

PREFIX ?= /usr/local
S := scripts

.PHONY: all deps base apply export qemu demo check check-series check-bisect \
        bench install clean help

all: qemu

help:
	@sed -n 's/^## //p' README.md | head -40

deps:
	$(S)/deps.sh

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

install: qemu
	$(S)/install.sh "$(PREFIX)" "$(DESTDIR)"

clean:
	rm -rf build/qemu-build
