# manifold: `make run` starts it on the examples; `make test` runs every test.
GO          ?= go
BIN         := bin/manifold
STATE       ?= .manifold
STACK_IMAGE ?= manifold/stack:24
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
export GOTOOLCHAIN := local

# Fuzz targets run briefly in `make test` (package:FuzzName). drivers/slugtar's
# FuzzUnpack is left out: its workers stall at 0 execs/s on these machines. One cause
# is found and fixed (mkdir on ext4, see fuzzScratch); with it they still stall after a
# few hundred runs, for a reason not yet known. Its seed corpus runs in every `go test`.
FUZZ        ?= spec:FuzzLoadHCL spec:FuzzLoadYAML spec:FuzzProcfile logs:FuzzSyslogFrame reconciler/source:FuzzWebhook reconciler/source:FuzzWebhookSignature router/h1:FuzzServeRequest router:FuzzDynoResponse
FUZZTIME    ?= 5s

.PHONY: build run test test-go fuzz-short bench lint deps stack-image clean

build:
	$(GO) build -o $(BIN) ./cmd/manifold

run: build
	./$(BIN) validate examples
	./$(BIN) up --repo examples --state $(STATE) --stop-dynos-on-exit --api 127.0.0.1:7070 --dashboard-login

deps:
	.ci/deps

# The local stack image (manifold-24): a busybox-static root filesystem imported into
# the Docker Engine, since no registry can be reached. Built only when missing.
stack-image:
	drivers/docker/stack/build.sh $(STACK_IMAGE)

test: deps stack-image test-go fuzz-short

test-go:
	$(GO) test -race -count=1 -timeout 40m ./...

# Go's fuzzing engine can end a run with a bare "context deadline exceeded" when
# -fuzztime runs out while it minimizes a new interesting input (targets whose inputs
# take a while, as FuzzServeRequest's 200 ms linger, hit it now and then); that run
# found no failing input (none is written under testdata/fuzz), so it is run again,
# once. A real failure writes its input, which the second run replays and fails on.
fuzz-short:
	@for target in $(FUZZ); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		out=$$($(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) ./$$pkg 2>&1); status=$$?; echo "$$out"; \
		if [ $$status -ne 0 ] && echo "$$out" | grep -q '^    context deadline exceeded$$' && ! echo "$$out" | grep -q 'Failing input written'; then \
			echo "fuzz $$pkg $$name: the engine's deadline, no failing input: once more"; \
			$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) ./$$pkg || exit 1; \
		elif [ $$status -ne 0 ]; then exit 1; fi; \
	done

bench: deps stack-image
	$(GO) test -run='^$$' -bench=. -benchmem -timeout 60m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@# The flow runs one way: nothing under drivers/ reaches up into reconciler/.
	@up=$$($(GO) list -deps ./drivers/... | grep /reconciler); if [ -n "$$up" ]; then echo "drivers/ imports reconciler/:"; echo "$$up"; exit 1; fi
	@# The CLI is also used from macOS.
	GOOS=darwin $(GO) build -o /dev/null ./cmd/manifold

clean:
	rm -rf bin $(STATE)
