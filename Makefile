# Thin glue over CMake so the quick start is two commands:
#   make run    install what is missing, build, start a local cluster
#               (KV_TLS=1 make run: TLS on every port, certificates in var/certs)
#   make test   install what is missing, build (plain and ASan/UBSan), test
JOBS ?= $(shell nproc)
BUILD ?= build
SAN_BUILD ?= build-san

.PHONY: all deps build build-san run test test-plain test-san soak bench clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(SAN_BUILD)/CMakeCache.txt: | deps
	CC=clang cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKV_SANITIZE=ON -DKV_FUZZ=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps $(SAN_BUILD)/CMakeCache.txt
	cmake --build $(SAN_BUILD) -j $(JOBS)

run: build
	./scripts/run-cluster.sh $(BUILD)

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE soak

test-san: build-san
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2 -LE 'soak|nosan'

test: test-plain test-san

soak: build build-san
	cd $(BUILD) && ctest --output-on-failure -L soak
	cd $(SAN_BUILD) && ctest --output-on-failure -L soak -R '^fuzz_'


clean:
	rm -rf $(BUILD) $(SAN_BUILD) var
