// Building blocks of the HTML reports (reports/report.h): the page skeleton with its inline
// stylesheet, sections, figures with captions, tables, text escaping and number formatting,
// plus small file readers. Everything a report needs is inline: no scripts, fonts, styles or
// images are fetched. Every text that comes from data goes through esc().
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moetb::reports {

// Escapes text for HTML content and attribute values.
std::string esc(const std::string& text);

// Numbers for people: "0.123" (fixed decimals), "–" for missing / non-finite values.
std::string fmt(double value, int decimals = 3);
std::string fmt(const nlohmann::json& value, int decimals = 3);  // numbers only, else "–"
// The exact value for a data-value attribute (shortest round trip), "" when not a number.
std::string exact(const nlohmann::json& value);

// The whole document: <main id="report" data-kind="KIND"> holding the header and `body`.
// `toc` lists (section id, title) for the navigation bar.
std::string page(const std::string& title, const std::string& kind, const std::string& subtitle_html,
                 const std::vector<std::pair<std::string, std::string>>& toc, const std::string& body);

// <section id="ID"><h2>TITLE</h2> INTRO? CONTENT</section>; intro_html is a lead paragraph (trusted HTML).
std::string section(const std::string& id, const std::string& title, const std::string& intro_html,
                    const std::string& content);

// <figure class="CLASSES" ATTRS>SVG<figcaption>CAPTION</figcaption></figure>; attrs is raw
// (e.g. ` data-layer="3"`), the caption trusted HTML built with esc().
std::string figure(const std::string& classes, const std::string& attrs, const std::string& svg,
                   const std::string& caption_html);

// A table: header cells and body rows are trusted HTML (build them with esc()); a cell whose
// text starts with "<td" or "<th" is written as it is, others are wrapped in <td>.
struct Table {
  std::string id;                        // "" = none
  std::string caption;                   // plain text title above the table, "" = none
  std::vector<std::string> header;       // plain text, escaped here
  std::vector<std::size_t> numeric;      // columns holding numbers (their headers align right)
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row_attrs;    // optional raw attributes per row (e.g. ` data-key="rs"`)
};
std::string table(const Table& t);
// A cell with a number, right-aligned, carrying the exact value in data-value.
std::string number_cell(const nlohmann::json& value, int decimals = 3);

// A small note paragraph (plain text, escaped).
std::string note(const std::string& text);

// Reads a whole text file; throws std::runtime_error with one line naming the file.
std::string read_text(const std::string& path);
// Reads a JSON file; throws with one line naming the file when it cannot be read or parsed.
nlohmann::json read_json(const std::string& path);

}  // namespace moetb::reports
