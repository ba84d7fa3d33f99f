// Shared CLI plumbing: atomic output files, layer-range parsing, reference groups,
// and the git revision baked in at build time for provenance.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace moetb::cli {

// Writes `text` to `path` through a temporary file and a rename ("-" = stdout), creating
// missing parent folders first.
void write_output(const std::string& path, const std::string& text);
// Creates the missing parent folders of an output path (nothing for "-" or a bare name), so that
// `--out data/default` works on a fresh clone; one-line std::invalid_argument on failure.
// (common/safe_output.h refuses a missing parent by design: the callers create it.)
void make_parent_folders(const std::string& path);
// "0-3,7,10-11" -> {0,1,2,3,7,10,11}; throws std::invalid_argument on bad syntax.
std::vector<int> parse_layer_ranges(const std::string& text);
// A JSON list of lists of expert ids, given inline or as a file path.
std::vector<std::vector<int>> parse_reference_groups(const std::string& text_or_path);
const char* git_revision();
// Exit status a subcommand asks for without an error (e.g. validate with failing checks).
int& exit_code();

}  // namespace moetb::cli
