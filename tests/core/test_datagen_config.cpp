// ConfigBinder (common/config_binder.h) and the datagen config: TOML of every bound type
// (integers, numbers, booleans, strings, arrays, tables, dotted keys); unknown keys and
// wrong types fail with one line naming the source and the key; `set("key=value")` for
// each kind, lists "1,2,3" and map entries "table.name=value"; to_toml() round-trips
// (load_toml(to_toml()) gives the same to_json()); validate_datagen_config names the key.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config_binder.h"
#include "datagen/config.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;

namespace {

struct Demo {
  int64_t n = 3;
  double x = 0.5;
  bool flag = false;
  std::string name = "a";
  std::vector<double> v;
  std::vector<std::string> names;
  std::map<std::string, std::string> m;
  int64_t depth = 2;
  double lr = 0.01;
};

void bind(ConfigBinder& b, Demo& d) {
  b.add("n", &d.n, "an integer");
  b.add("model.depth", &d.depth, "a dotted integer");  // before the top-level keys on purpose
  b.add("x", &d.x, "a number");
  b.add("flag", &d.flag, "a boolean");
  b.add("name", &d.name, "a string");
  b.add("v", &d.v, "numbers");
  b.add("names", &d.names, "strings");
  b.add("m", &d.m, "a table of strings");
  b.add("model.optim.lr", &d.lr, "a doubly dotted number");
}


}  // namespace

TEST_CASE("datagen: config binder reads every TOML type", "[datagen]") {
  Demo d;
  ConfigBinder b;
  bind(b, d);
  b.load_toml(R"(
n = 7
x = 3            # an integer is a fine number
flag = true
name = "zed"
v = [1, 2.5, -3e2]
names = ["p", "q r"]
[m]
code = "/usr/include"
"a.b" = "/x"
[model]
depth = 4
[model.optim]
lr = 1e-3
)", "demo.toml");
  CHECK(d.n == 7);
  CHECK(d.x == 3.0);
  CHECK(d.flag);
  CHECK(d.name == "zed");
  CHECK(d.v == std::vector<double>{1.0, 2.5, -300.0});
  CHECK(d.names == std::vector<std::string>{"p", "q r"});
  CHECK(d.m == std::map<std::string, std::string>{{"code", "/usr/include"}, {"a.b", "/x"}});
  CHECK(d.depth == 4);
  CHECK(d.lr == 1e-3);
  const nlohmann::json j = b.to_json();
  CHECK(j["model"]["optim"]["lr"] == 1e-3);
  CHECK(j["m"]["code"] == "/usr/include");
  b.load_toml("model.depth = 6", "inline");  // dotted keys written inline
  CHECK(d.depth == 6);
}

TEST_CASE("datagen: config binder rejects unknown keys and wrong types", "[datagen]") {
  Demo d;
  ConfigBinder b;
  bind(b, d);
  CHECK_ONE_LINE_ERROR(b.load_toml("bogus = 1", "cfg.toml"), "cfg.toml", "unknown key 'bogus'");
  CHECK_ONE_LINE_ERROR(b.load_toml("[model]\nwidth = 3", "cfg.toml"), "cfg.toml", "model.width");
  CHECK_ONE_LINE_ERROR(b.load_toml("[other]\nk = 1", "cfg.toml"), "cfg.toml", "other");
  CHECK_ONE_LINE_ERROR(b.load_toml("n = \"seven\"", "cfg.toml"), "cfg.toml", "'n'", "integer", "string");
  CHECK_ONE_LINE_ERROR(b.load_toml("n = 1.5", "cfg.toml"), "'n'", "integer");
  CHECK_ONE_LINE_ERROR(b.load_toml("x = \"1\"", "cfg.toml"), "'x'", "number");
  CHECK_ONE_LINE_ERROR(b.load_toml("flag = 1", "cfg.toml"), "'flag'", "true or false");
  CHECK_ONE_LINE_ERROR(b.load_toml("name = 3", "cfg.toml"), "'name'", "string");
  CHECK_ONE_LINE_ERROR(b.load_toml("v = 3", "cfg.toml"), "'v'", "array");
  CHECK_ONE_LINE_ERROR(b.load_toml("v = [1, \"a\"]", "cfg.toml"), "'v'", "number");
  CHECK_ONE_LINE_ERROR(b.load_toml("names = [1]", "cfg.toml"), "'names'", "string");
  CHECK_ONE_LINE_ERROR(b.load_toml("m = 3", "cfg.toml"), "'m'", "table");
  CHECK_ONE_LINE_ERROR(b.load_toml("[m]\ncode = 3", "cfg.toml"), "m.code", "string");
  CHECK_ONE_LINE_ERROR(b.load_toml("n = = 3", "cfg.toml"), "cfg.toml:1:", "syntax");
  CHECK_ONE_LINE_ERROR(b.load_file("/no/such/dir/cfg.toml"), "/no/such/dir/cfg.toml");
  CHECK(d.n == 3);  // nothing above changed a value
  CHECK_THROWS_AS(b.add("n", &d.n, "twice"), std::logic_error);
}

TEST_CASE("datagen: config binder set() parses each kind", "[datagen]") {
  Demo d;
  ConfigBinder b;
  bind(b, d);
  b.set("n=9");
  b.set("x=0.25");
  b.set("flag=true");
  b.set("name=hello, world = 1");  // strings go in bare, commas and '=' included
  b.set("v=1,2,3");
  b.set("names=a,b c,d");
  b.set("m.code=/p");
  b.set("m.data=/q=r");
  b.set("model.depth=5");
  b.set("model.optim.lr=2e-4");
  CHECK(d.n == 9);
  CHECK(d.x == 0.25);
  CHECK(d.flag);
  CHECK(d.name == "hello, world = 1");
  CHECK(d.v == std::vector<double>{1, 2, 3});
  CHECK(d.names == std::vector<std::string>{"a", "b c", "d"});
  CHECK(d.m == std::map<std::string, std::string>{{"code", "/p"}, {"data", "/q=r"}});
  CHECK(d.depth == 5);
  CHECK(d.lr == 2e-4);
  b.set("v=[4.5]");
  CHECK(d.v == std::vector<double>{4.5});
  b.set("v=");
  CHECK(d.v.empty());
  b.set("names=");
  CHECK(d.names.empty());
  b.set("x=2");  // an integer for a number
  CHECK(d.x == 2.0);
  CHECK_ONE_LINE_ERROR(b.set("nokey=1"), "nokey");
  CHECK_ONE_LINE_ERROR(b.set("n=abc"), "'n'", "abc");
  CHECK_ONE_LINE_ERROR(b.set("n=1.5"), "'n'", "integer");
  CHECK_ONE_LINE_ERROR(b.set("flag=1"), "'flag'");
  CHECK_ONE_LINE_ERROR(b.set("v=1,x"), "'v'");
  CHECK_ONE_LINE_ERROR(b.set("m=3"), "m.NAME");
  CHECK_ONE_LINE_ERROR(b.set("=3"), "key=value");
  CHECK_ONE_LINE_ERROR(b.set("n"), "key=value");
  CHECK(d.n == 9);
}

TEST_CASE("datagen: to_toml round-trips through load_toml", "[datagen]") {
  Demo d;
  ConfigBinder b;
  bind(b, d);
  d.n = std::numeric_limits<int64_t>::min();
  d.depth = std::numeric_limits<int64_t>::max();
  d.x = 1.0 / 3.0;
  d.lr = 1e-300;
  d.flag = true;
  d.name = "quote \" backslash \\ tab \t newline \n unicode \xc3\xa9 end";
  d.v = {0.1, -2.0, 1e22, 5e-324, -std::numeric_limits<double>::infinity()};
  d.names = {"", "a b", "[x]", "\"q\"", "\nleading newline", "\n\n", "it's\n"};
  d.m = {{"plain", "/p"}, {"with space", "/a b"}, {"dot.ted", "c:\\x"}, {"line\nbreak", "\n/x"}};
  const std::string text = b.to_toml();
  INFO(text);
  Demo e;
  ConfigBinder c;
  bind(c, e);
  c.load_toml(text, "round-trip");
  CHECK(c.to_json() == b.to_json());
  CHECK(e.name == d.name);
  CHECK(e.x == d.x);
  CHECK(e.v == d.v);
  CHECK(e.names == d.names);
  CHECK(e.m == d.m);
  CHECK(e.n == d.n);
  CHECK(c.to_toml() == text);

  // The datagen config: every key, its defaults and a changed copy.
  DatagenConfig defaults, changed;
  changed.shares = {1, 2, 3, 4};
  changed.domain_names = {"code", "math", "law", "web"};
  changed.text_domains = {{"c", "/usr/include"}};
  changed.shared_vocab = 0.1;
  changed.bos = false;
  for (DatagenConfig* cfg : {&defaults, &changed}) {
    ConfigBinder from, to;
    bind_datagen_config(from, *cfg);
    DatagenConfig back;
    bind_datagen_config(to, back);
    to.load_toml(from.to_toml(), "datagen");
    CHECK(to.to_json() == from.to_json());
  }
  ConfigBinder keys;
  DatagenConfig k;
  bind_datagen_config(keys, k);
  CHECK(keys.to_json().size() == keys.fields().size());  // no dotted keys: one entry per field
}

TEST_CASE("datagen: validate_datagen_config names the bad key", "[datagen]") {
  auto bad = [](auto&& change, const std::string& key) {
    DatagenConfig c;
    change(c);
    INFO("expected key " << key);
    CHECK_ONE_LINE_ERROR(validate_datagen_config(c), key + ": ");
  };
  CHECK_NOTHROW(validate_datagen_config(DatagenConfig{}));
  bad([](DatagenConfig& c) { c.shares = {0, 0, 0, 0}; }, "shares");
  bad([](DatagenConfig& c) { c.shares = {1, 1}; }, "shares");
  bad([](DatagenConfig& c) { c.shares = {1, -1, 1, 1}; }, "shares");
  bad([](DatagenConfig& c) { c.domains = 65; }, "domains");
  bad([](DatagenConfig& c) { c.shared_vocab = 1.5; }, "shared_vocab");
  bad([](DatagenConfig& c) { c.common_mix = std::nan(""); }, "common_mix");
  bad([](DatagenConfig& c) { c.order = 3; }, "order");
  bad([](DatagenConfig& c) { c.branching = 65; }, "branching");
  bad([](DatagenConfig& c) { c.motif_len_max = 2; }, "motif_len_max");
  bad([](DatagenConfig& c) { c.motifs_per_domain = 0; }, "motif_rate");
  bad([](DatagenConfig& c) { c.order = 2, c.vocab_per_domain = 300; }, "vocab_per_domain");
  bad([](DatagenConfig& c) { c.domain_names = {"a"}; }, "domain_names");
  bad([](DatagenConfig& c) { c.doc_len_dist = "poisson"; }, "doc_len_dist");
  bad([](DatagenConfig& c) { c.doc_len_mean = 4000; }, "doc_len_mean");
  bad([](DatagenConfig& c) { c.packing = "loose"; }, "packing");
  bad([](DatagenConfig& c) { c.token_dtype = "u8"; }, "token_dtype");
  bad([](DatagenConfig& c) { c.seq_len = 1; }, "seq_len");
  bad([](DatagenConfig& c) { c.text_domains = {{"t", "/tmp"}}, c.val_fraction = 1.0; }, "val_fraction");
  bad([](DatagenConfig& c) { c.text_domains = {{"t", ""}}; }, "text_domains.t");
}
