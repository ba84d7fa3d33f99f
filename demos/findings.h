// The five demos' "what to look for" builders (demos/findings.cpp), one per demo of the
// catalogue (demos/demos.cpp). Each reads the demo's runs over seeds (claims.h) and states a
// difference as an effect only when its paired-by-seed interval excludes zero.
#pragma once
#include "demos/claims.h"

namespace moetb::demos {

DemoFindings collapse_findings(const DemoRuns& runs);
DemoFindings scope_findings(const DemoRuns& runs);
DemoFindings capacity_findings(const DemoRuns& runs);
DemoFindings oracle_findings(const DemoRuns& runs);
DemoFindings expert_choice_findings(const DemoRuns& runs);

}  // namespace moetb::demos
