// `moetb validate`: planted scenarios whose answers are known (closed forms, invariants,
// monotone trends), each checked against the metrics library. It proves the metrics
// right on ground truth before anyone trusts them on a real checkpoint. The same
// scenarios run as Catch2 tests (tests/core/test_validation.cpp).
#pragma once
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "metrics/trace.h"

namespace moetb {

struct ValidationCheck {
  std::string scenario;
  std::string metric;
  std::string expected;           // closed form or property, in words
  std::optional<double> measured;  // null when the metric was undefined
  bool pass = false;
};

struct ValidationScenario {
  std::string name;
  std::string description;
  std::function<std::vector<ValidationCheck>()> run;
};

const std::vector<ValidationScenario>& validation_scenarios();
// Runs the scenarios whose names are in `only` (all when empty); throws on unknown names.
std::vector<ValidationCheck> run_validation(const std::vector<std::string>& only = {});
std::string validation_table(const std::vector<ValidationCheck>& checks);
nlohmann::json validation_json(const std::vector<ValidationCheck>& checks);

// Helpers shared by the scenarios and the tests.
nlohmann::json metrics_json_of(const ShardSource& trace);
// Largest absolute difference between two metrics JSON objects over numeric leaves whose
// dotted path matches no entry of `skip` (substring match); +inf if the shapes or nulls differ.
double max_metric_difference(const nlohmann::json& a, const nlohmann::json& b, const std::vector<std::string>& skip);

}  // namespace moetb
