// Renders Debian manual pages to plain UTF-8 text with Debian's own formatter: the
// source (gzip inflated with zlib) is piped into `groff -K utf8 -T utf8 -t -man -P -cbou
// -rLL=5000n`, spawned with posix_spawnp (no shell), and the output normalised (overstrikes,
// runs of spaces, blank lines). One page is one document of a language domain, for the
// MoE Routing Testbed's real multilingual mix (arXiv 2604.07030).
#pragma once
#include <string>
#include <vector>

namespace moetb {

enum class RenderStatus { kOk, kRedirect, kNotUtf8, kEmpty, kFailed };
const char* render_status_name(RenderStatus s);

struct RenderResult {
  RenderStatus status = RenderStatus::kFailed;
  std::string text;   // normalised UTF-8 text when kOk
  std::string error;  // first stderr line of the formatter when kFailed
};

// Pages of a man tree: regular files (symlinks skipped) directly inside DIR/man*/, as
// sorted relative paths ("man1/ls.1.gz"). Throws "KEY: DIR: ..." when DIR is unreadable
// or holds no pages.
std::vector<std::string> list_manpages(const std::string& key, const std::string& dir);

// The page's roff source; .gz files are inflated. Throws "PATH: ..." when unreadable.
std::string read_manpage_source(const std::string& path);

// Renders one page with `groff` (a program name looked up in PATH, or a path). A page
// that only redirects to another (".so man1/x.1") is kRedirect, a source that is not
// UTF-8 kNotUtf8. Throws std::invalid_argument when the formatter cannot be started.
RenderResult render_manpage(const std::string& path, const std::string& groff);

// Plain text from formatter output: overstrike sequences (x BACKSPACE y) keep y, other
// control bytes but newline go, tabs become spaces, trailing spaces go, runs of spaces
// after a line's indentation become one, runs of blank lines one, no blank lines at the
// ends; the text ends with one newline (empty text stays empty).
std::string normalize_rendered_text(const std::string& raw);

bool is_valid_utf8(const std::string& s);
// Longest prefix of at most max_bytes that does not cut a UTF-8 sequence.
std::string utf8_prefix(const std::string& s, std::size_t max_bytes);

// Runs argv[0] (PATH lookup) with `input` on stdin; collects stdout and stderr. Returns the
// exit status (128 + signal when killed). Throws std::invalid_argument when it cannot start.
int run_program(const std::vector<std::string>& argv, const std::string& input, std::string* out, std::string* err);

}  // namespace moetb
