// Shared CLI plumbing: output files (through common/safe_output.h), layer-range parsing,
// reference groups, and the git revision baked in at build time for provenance.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "common/safe_output.h"

namespace moetb::cli {

// Writes `text` to `path` ("-" or "" = stdout) through the output layer: a temporary name,
// fsync and rename; a device or FIFO is written through; an existing file needs opt.force;
// an output that is (or lies inside) one of opt.inputs is refused.
void write_output(const std::string& path, const std::string& text, const OutputOptions& opt);
// A file inside a folder moetb owns (a demo's report.html): replaced without asking.
void write_output(const std::string& path, const std::string& text);
// OutputOptions for a command's -o: --force and its inputs.
OutputOptions output_options(bool force, const std::vector<std::string>& inputs);
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
