# Included at the end of llama.cpp's project() call while pip builds llama-cpp-python from its sdist
# (CMAKE_ARGS="-DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>", `make local-llm` and .ci/run do it).
# llama-cpp-python forces llama.cpp's "common" library on (a CACHE FORCE in its CMakeLists), but its
# Python bindings load only libllama and libggml*: common (chat templates, argument parsing, JSON) is
# most of the compile time. A normal variable set here shadows the cached ON for llama.cpp's folder,
# so common is neither built nor installed. Measured on 2 shared cores: see the README, "A real local model".
set(LLAMA_BUILD_COMMON OFF)
