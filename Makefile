# The two commands of the README. Everything else is CMake/CTest.
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build, run the whole suite
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifdef CI
CMAKE_FLAGS += -DCINFER_WERROR=ON
endif

.PHONY: all deps build test demo clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/cinfer demo

clean:
	rm -rf $(BUILD)
