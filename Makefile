# make run   installs what is missing, builds, and runs the main job (glia train)
# make test  installs what is missing, builds, runs every test, then fuzzes the file readers
#            for FUZZ_SECONDS per target (a clang build in build-fuzz; FUZZ_SECONDS=0 skips it)
# make bench builds and runs the benchmarks against PyTorch
BUILD ?= build
CMAKE_FLAGS ?= -DGLIA_WERROR=ON
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20

.PHONY: all deps build run test fuzz bench install format clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: train Glia's default CNN on Fashion-MNIST (add ARGS="--epochs 3" etc.).
run: build
	./$(BUILD)/tools/glia train $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@if [ "$(FUZZ_SECONDS)" != "0" ]; then scripts/fuzz --seconds $(FUZZ_SECONDS); fi

# libFuzzer on the readers of untrusted files (safetensors, model files, IDX, CIFAR-10).
fuzz: deps
	scripts/fuzz --seconds $(FUZZ_SECONDS)

bench:
	@scripts/install-deps --bench
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) -DGLIA_BUILD_BENCH=ON -DGLIA_BUILD_TORCH_BENCH=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	scripts/run-bench $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
