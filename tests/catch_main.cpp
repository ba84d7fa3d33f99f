// The Catch2 v2 main, compiled once and shared by the test binaries.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
