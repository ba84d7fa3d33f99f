// Shared CLI plumbing (see output.h).
#include "cli/output.h"

#include "metrics/trace.h"
#include "moetb_git_rev.h"  // generated at build time

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace moetb::cli {

void make_parent_folders(const std::string& path) {
  if (path.empty() || path == "-") return;
  std::filesystem::path target(path);
  if (!target.has_filename()) target = target.parent_path();  // "E/" names E itself
  const std::filesystem::path parent = target.parent_path();
  std::error_code ec;
  if (parent.empty() || std::filesystem::is_directory(parent, ec)) return;
  std::filesystem::create_directories(parent, ec);
  if (ec) throw std::invalid_argument(path + ": cannot create the folder " + parent.string() + ": " + ec.message());
}

void write_output(const std::string& path, const std::string& text, const OutputOptions& opt) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    if (!std::cout) throw OutputError("write failed: standard output");
    return;
  }
  write_output_file(path, text, opt);
}

void write_output(const std::string& path, const std::string& text) {
  OutputOptions opt;
  opt.force = true;
  opt.create_parents = true;
  write_output(path, text, opt);
}

OutputOptions output_options(bool force, const std::vector<std::string>& inputs) {
  OutputOptions opt;
  opt.force = force;
  opt.create_parents = true;  // `-o new/dir/out.json` works on a fresh clone
  for (const auto& in : inputs)
    if (!in.empty() && in != "-") opt.inputs.emplace_back(in);
  return opt;
}

std::vector<int> parse_layer_ranges(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string part;
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("--layers: '" + text + "' is not a list of layers or ranges like 0-3,7");
    return std::stoi(s);
  };
  while (std::getline(ss, part, ',')) {
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(part));
      continue;
    }
    const int a = number(part.substr(0, dash)), b = number(part.substr(dash + 1));
    if (b < a) throw std::invalid_argument("--layers: range '" + part + "' runs backwards");
    for (int l = a; l <= b; ++l) out.push_back(l);
  }
  if (out.empty()) throw std::invalid_argument("--layers: no layer given");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::vector<int>> parse_reference_groups(const std::string& text_or_path) {
  std::string text = text_or_path;
  std::string where = "--reference";
  if (!text.empty() && text[0] != '[') {
    std::ifstream in(text_or_path);
    if (!in) throw std::invalid_argument("--reference: " + text_or_path + " is neither a JSON list nor a readable file");
    std::stringstream buf;
    buf << in.rdbuf();
    text = buf.str();
    where = text_or_path;
  }
  try {
    return parse_reference_groups_text(text, 0);  // expert range checked against the trace later
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": reference groups " + e.what());
  }
}

const char* git_revision() { return MOETB_GIT_REV; }

int& exit_code() {
  static int code = 0;
  return code;
}

}  // namespace moetb::cli
