// The page skeleton, stylesheet and small HTML helpers of the reports (see html.h). The
// stylesheet is inline and uses system fonts; the page needs no JavaScript. Wide figures
// scroll sideways inside their frame instead of shrinking below a readable size.
#include "reports/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "charts/svg_common.h"

namespace moetb::reports {
namespace {

const char* const kStyle = R"CSS(
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa;--accent:#0b5cad}
*{box-sizing:border-box}
html{background:var(--soft)}
body{margin:0;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main#report{max-width:1320px;margin:0 auto;padding:20px 32px 48px;background:#fff;min-height:100vh}
header h1{font-size:26px;line-height:1.25;margin:4px 0 4px}
header .subtitle{color:var(--muted);margin:0 0 10px;overflow-wrap:anywhere}
nav.toc{border-bottom:1px solid var(--line);padding:6px 0 8px;font-size:14px}
nav.toc a{margin-right:16px;color:var(--accent);text-decoration:none;white-space:nowrap}
nav.toc a:hover{text-decoration:underline}
section{margin:26px 0 8px;border-top:1px solid var(--line)}
section#intro{border-top:none;background:#f3f8fd;border-left:4px solid var(--accent);padding:2px 16px;margin-top:16px}
h2{font-size:21px;margin:16px 0 6px}
h3{font-size:16px;margin:20px 0 6px}
p{max-width:90ch}
p.lead{color:#30363d;margin:4px 0 12px}
p.note{color:#6b4200;background:#fff8e6;border-left:3px solid #e69f00;padding:6px 10px}
.figures{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin:8px 0 16px}
figure.chart{margin:0;padding:10px 10px 8px;border:1px solid var(--line);border-radius:6px;background:#fff;max-width:100%;overflow-x:auto}
figure.chart svg{display:block;height:auto}
figure.curve svg,figure.plot svg{max-width:100%}
@media (min-width:1100px){figure.half{max-width:calc(50% - 9px)}}
figcaption{font-size:13px;line-height:1.45;color:var(--muted);margin-top:6px;contain:inline-size;min-width:260px}
figcaption b{color:var(--fg)}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0 16px;font-size:14px}
p.table-title{font-weight:600;margin:18px 0 4px}
th,td{padding:4px 10px;border-bottom:1px solid #e6e8eb;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid var(--line);background:var(--soft);vertical-align:bottom}
tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.num{text-align:right}
td.meaning{color:#3d444d;min-width:30ch;max-width:70ch}
td.key,th.key{white-space:nowrap}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:13px}
pre{background:var(--soft);padding:10px 12px;border-radius:6px;overflow-x:auto;max-height:40em}
details{margin:8px 0}
details summary{cursor:pointer;color:var(--accent)}
@media print{html{background:#fff}main#report{padding:0}figure,table{break-inside:avoid}nav.toc{display:none}}
)CSS";

}  // namespace

std::string esc(const std::string& text) { return charts::xml_escape(text); }

std::string fmt(double value, int decimals) {
  if (!std::isfinite(value)) return "\xE2\x80\x93";  // en dash
  char buffer[64];
  if (value != 0 && std::fabs(value) < 0.5 * std::pow(10.0, -decimals))
    std::snprintf(buffer, sizeof buffer, "%.2g", value);  // tiny: 3.5e-05 rather than 0.000
  else
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string s = buffer;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0.000"
  return s;
}

std::string fmt(const nlohmann::json& value, int decimals) {
  return value.is_number() ? fmt(value.get<double>(), decimals) : fmt(NAN, decimals);
}

std::string exact(const nlohmann::json& value) { return value.is_number() ? value.dump() : ""; }

std::string page(const std::string& title, const std::string& kind, const std::string& subtitle_html,
                 const std::vector<std::pair<std::string, std::string>>& toc, const std::string& body) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                    "<meta name=\"generator\" content=\"moetb report\">\n<title>" +
                    esc(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  out += "<main id=\"report\" data-kind=\"" + esc(kind) + "\">\n<header>\n<h1>" + esc(title) + "</h1>\n";
  if (!subtitle_html.empty()) out += "<p class=\"subtitle\">" + subtitle_html + "</p>\n";
  if (!toc.empty()) {
    out += "<nav class=\"toc\">";
    for (const auto& [id, name] : toc) out += "<a href=\"#" + esc(id) + "\">" + esc(name) + "</a>";
    out += "</nav>\n";
  }
  out += "</header>\n" + body + "</main>\n</body>\n</html>\n";
  return out;
}

std::string section(const std::string& id, const std::string& title, const std::string& intro_html,
                    const std::string& content) {
  std::string out = "<section id=\"" + esc(id) + "\">\n<h2>" + esc(title) + "</h2>\n";
  if (!intro_html.empty()) out += "<p class=\"lead\">" + intro_html + "</p>\n";
  return out + content + "</section>\n";
}

std::string figure(const std::string& classes, const std::string& attrs, const std::string& svg,
                   const std::string& caption_html) {
  return "<figure class=\"" + esc(classes) + "\"" + attrs + ">\n" + svg + "<figcaption>" + caption_html +
         "</figcaption>\n</figure>\n";
}

std::string table(const Table& t) {
  std::string out = t.caption.empty() ? "" : "<p class=\"table-title\">" + esc(t.caption) + "</p>\n";
  out += "<div class=\"table-wrap\"><table";
  if (!t.id.empty()) out += " id=\"" + esc(t.id) + "\"";
  out += ">\n<thead><tr>";
  for (std::size_t i = 0; i < t.header.size(); ++i) {
    const bool number = std::find(t.numeric.begin(), t.numeric.end(), i) != t.numeric.end();
    out += std::string("<th scope=\"col\"") + (number ? " class=\"num\"" : "") + ">" + esc(t.header[i]) + "</th>";
  }
  out += "</tr></thead>\n<tbody>\n";
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    out += "<tr" + (r < t.row_attrs.size() ? t.row_attrs[r] : std::string()) + ">";
    for (const auto& cell : t.rows[r])
      out += cell.rfind("<td", 0) == 0 || cell.rfind("<th", 0) == 0 ? cell : "<td>" + cell + "</td>";
    out += "</tr>\n";
  }
  return out + "</tbody>\n</table></div>\n";
}

std::string number_cell(const nlohmann::json& value, int decimals) {
  const std::string v = exact(value);
  return "<td class=\"num\"" + (v.empty() ? std::string() : " data-value=\"" + esc(v) + "\"") + ">" +
         fmt(value, decimals) + "</td>";
}

std::string note(const std::string& text) { return "<p class=\"note\">" + esc(text) + "</p>\n"; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::json read_json(const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(read_text(path), nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(path + ": not valid JSON");
  return j;
}

}  // namespace moetb::reports
