// Catch2 for the LibTorch tests: include this instead of <catch2/catch.hpp>. Torch's
// headers pull in glog (c10/util/Logging.h), whose CHECK(cond) aborts the whole process on
// failure; included after Catch it silently replaces Catch's CHECK. So glog comes first
// here and Catch's CHECK is the one that stays defined.
#pragma once
#ifdef TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED
#error "include tests/torch/torch_catch.h before (and instead of) <catch2/catch.hpp>"
#endif
#include <c10/util/Logging.h>
#undef CHECK
#include <catch2/catch.hpp>
