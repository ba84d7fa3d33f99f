// What a report's PATH is (run directory, sweep directory or trace) and the dispatch to its
// renderer (reports/report_kinds.h), plus the helpers the renderers share: path names, the
// metric summary of a run and the reference runs shown beside it.
#include "reports/report.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "reports/html.h"
#include "reports/report_kinds.h"
#include "runs/run_reader.h"

namespace fs = std::filesystem;

namespace moetb::reports {
namespace {

fs::path normal(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (ec) p = fs::path(path).lexically_normal();
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  return p;
}

// A safetensors file starts with an 8-byte little-endian header length and then '{'.
bool looks_like_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[9] = {};
  if (!in.read(head, sizeof head)) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(head[i]);
  return head[8] == '{' && n >= 2 && n < (uint64_t{1} << 32);
}

bool has_trace_shards(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors" && e.is_regular_file(ec)) return true;
  return false;
}

}  // namespace

std::string base_name(const std::string& path) {
  const fs::path p = normal(path);
  return p.filename().empty() ? path : p.filename().string();
}

nlohmann::json run_summary(const std::string& run_dir) { return runs::metrics_summary(run_dir); }

std::vector<Reference> load_references(const std::vector<std::string>& given, const std::string& auto_dir) {
  std::vector<Reference> refs;
  // A sweep's runs/ID/train is named by its router and ID ("topk 3fa9c2e1b0d4"), any other run by its folder.
  auto name_of = [](const std::string& dir) {
    const std::string base = base_name(dir);
    if (base != "train") return base;
    std::string router;
    std::error_code e;
    if (fs::exists(fs::path(dir) / "eval.json", e)) {
      const nlohmann::json ev = read_json((fs::path(dir) / "eval.json").string());
      if (ev.is_object() && ev.value("router", nlohmann::json()).is_string()) router = ev["router"].get<std::string>();
    }
    const std::string id = base_name(normal(dir).parent_path().string());
    return router.empty() ? id : router + " " + id;
  };
  std::error_code ec;
  for (const auto& given_ref : given) {
    // NAME=DIR names the reference; a DIR that exists as given wins over that reading.
    std::string r = given_ref, name;
    if (const auto eq = given_ref.find('='); eq != std::string::npos && eq > 0 && !fs::exists(given_ref, ec)) {
      name = given_ref.substr(0, eq);
      r = given_ref.substr(eq + 1);
    }
    if (!fs::is_directory(r, ec)) throw std::invalid_argument("--reference " + r + ": not a run directory");
    nlohmann::json summary = run_summary(r);
    if (summary.is_null())
      throw std::invalid_argument("--reference " + r + ": no metric summary (no eval.json and no evaluation in train_log.jsonl)");
    refs.push_back({name.empty() ? name_of(r) : name, std::move(summary), r});
  }
  if (!given.empty() || auto_dir.empty()) return refs;
  const fs::path self = normal(auto_dir);
  for (const char* name : {"oracle", "random"}) {
    const fs::path sibling = self.parent_path() / name;
    if (!fs::is_directory(sibling, ec) || fs::equivalent(sibling, self, ec)) continue;
    nlohmann::json summary = run_summary(sibling.string());
    if (!summary.is_null()) refs.push_back({name, std::move(summary), sibling.string()});
  }
  return refs;
}

std::string intro_section(const ReportOptions& options) {
  if (options.intro_html.empty()) return "";
  return "<section id=\"intro\">\n" + options.intro_html + "\n</section>\n";
}

std::string detect_kind(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (path.empty() || !fs::exists(status)) throw std::invalid_argument(path + ": no such file or directory");
  if (fs::is_directory(status)) {
    const fs::path dir(path);
    if (fs::exists(dir / "sweep.json", ec)) return "sweep";
    if (runs::looks_like_run(dir)) return "run";
    if (has_trace_shards(dir)) return "trace";
    throw std::invalid_argument(path + ": not a run directory (no run.json, eval.json or train_log.jsonl), a sweep directory "
                                       "(no sweep.json) or a folder of trace shards (no .safetensors files)");
  }
  if (fs::path(path).extension() == ".safetensors" || looks_like_safetensors(path)) return "trace";
  throw std::invalid_argument(path + ": not a run directory, a sweep directory or a routing trace (.safetensors)");
}

std::string render_report(const std::string& path, const ReportOptions& options) {
  const std::string kind = detect_kind(path);
  if (kind == "sweep") {
    if (!options.references.empty()) throw std::invalid_argument("--reference applies to run and trace reports, not to a sweep");
    return render_sweep(path, options);
  }
  if (kind == "run") return render_run(path, options);
  return render_trace(path, options);
}

}  // namespace moetb::reports
