// Placeholder so the library links until the report renderer lands (reports/report.h).
#include "reports/report.h"

#include <stdexcept>

namespace moetb::reports {

std::string detect_kind(const std::string& path) { throw std::invalid_argument(path + ": reports are not built yet"); }

std::string render_report(const std::string& path, const ReportOptions&) { return detect_kind(path); }

}  // namespace moetb::reports
