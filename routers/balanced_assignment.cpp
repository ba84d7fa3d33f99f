// Balanced assignment (balanced_assignment.h; BASE layers arXiv 2103.16716) as a min-cost
// flow: source -> token (k units) -> expert (unit edges, cost -score) -> sink (capacity[e]).
// Successive shortest paths, one unit of one token at a time: a path enters an expert, then
// may move other tokens expert to expert until it reaches one with room. Tokens are condensed
// into expert-to-expert edges whose cost is the cheapest move, min over tokens u in e and not
// in e' of (score[u][e] - score[u][e']), kept in one lazy min-heap per expert pair. Expert
// prices p (potentials -p) keep reduced costs >= 0, so each path is a Dijkstra over E nodes.
#include "routers/balanced_assignment.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <utility>

namespace moetb {

std::vector<int64_t> balanced_capacities(int64_t n_tokens, int64_t k, int64_t n_experts) {
  if (n_tokens < 0 || k < 1 || n_experts < 1 || k > n_experts)
    throw std::invalid_argument("balanced capacities: need n >= 0 and 1 <= k <= E");
  const int64_t total = n_tokens * k, base = total / n_experts, extra = total % n_experts;
  std::vector<int64_t> cap(static_cast<std::size_t>(n_experts), base);
  for (int64_t e = 0; e < extra; ++e) ++cap[static_cast<std::size_t>(e)];
  return cap;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

using Entry = std::pair<double, int64_t>;  // (score[u][e] - score[u][e'], u): a move of u from e to e'
using MinHeap = std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>>;

class Solver {
 public:
  Solver(const double* a, int64_t n, int64_t e, const std::vector<int64_t>& cap)
      : a_(a), n_(n), e_(e), cap_(cap), load_(static_cast<std::size_t>(e), 0), price_(static_cast<std::size_t>(e), 0.0),
        in_(static_cast<std::size_t>(n * e), 0), heaps_(static_cast<std::size_t>(e * e)) {}

  void add_unit(int64_t t) {
    const auto E = static_cast<std::size_t>(e_);
    std::vector<double> rd(E, kInf);                         // reduced distance from token t
    std::vector<std::pair<int64_t, int64_t>> pred(E, {-1, t});  // (previous expert or -1, moved token)
    std::vector<char> done(E, 0);
    double pi_t = -kInf;  // potential of t: every edge t -> e then has reduced cost >= 0
    for (int64_t x = 0; x < e_; ++x)
      if (!in(t, x)) pi_t = std::max(pi_t, score(t, x) - price(x));
    for (int64_t x = 0; x < e_; ++x)
      if (!in(t, x)) rd[idx(x)] = pi_t - (score(t, x) - price(x));
    double rd_sink = kInf;
    int64_t last = -1;
    for (;;) {
      int64_t v = -1;
      for (int64_t x = 0; x < e_; ++x)
        if (!done[idx(x)] && rd[idx(x)] < kInf && (v < 0 || rd[idx(x)] < rd[idx(v)])) v = x;
      if (v < 0 || rd[idx(v)] >= rd_sink) break;
      done[idx(v)] = 1;
      if (load_[idx(v)] < cap_[idx(v)]) {
        const double d = rd[idx(v)] + std::max(0.0, -price(v) - pi_sink_);
        if (d < rd_sink) {
          rd_sink = d;
          last = v;
        }
      }
      for (int64_t w = 0; w < e_; ++w) {
        if (w == v || done[idx(w)]) continue;
        const Entry* top = cheapest(v, w);
        if (top == nullptr) continue;
        const double d = rd[idx(v)] + std::max(0.0, top->first - price(v) + price(w));
        if (d < rd[idx(w)]) {
          rd[idx(w)] = d;
          pred[idx(w)] = {v, top->second};
        }
      }
    }
    if (last < 0) throw std::logic_error("balanced assignment: no augmenting path (capacities inconsistent)");
    ++load_[idx(last)];
    // Walk back: each hop moves one token, the first places t. Memberships flip first; then,
    // for every token touched, the moves that have just become valid are pushed (a valid move
    // is never popped, so every heap keeps an entry for each currently valid move).
    std::vector<std::pair<int64_t, std::vector<char>>> touched;  // (token, membership before)
    auto remember = [&](int64_t u) {
      for (const auto& entry : touched)
        if (entry.first == u) return;
      touched.push_back({u, std::vector<char>(in_.begin() + u * e_, in_.begin() + (u + 1) * e_)});
    };
    for (int64_t w = last;;) {
      const auto [from, u] = pred[idx(w)];
      remember(from < 0 ? t : u);
      if (from < 0) {
        set_in(t, w, 1);
        break;
      }
      set_in(u, from, 0);
      set_in(u, w, 1);
      w = from;
    }
    for (const auto& [u, before] : touched) push_new_moves(u, before);
    for (int64_t x = 0; x < e_; ++x) price_[idx(x)] -= done[idx(x)] ? rd[idx(x)] : rd_sink;
    pi_sink_ += rd_sink;
  }

  bool in(int64_t u, int64_t x) const { return in_[static_cast<std::size_t>(u * e_ + x)] != 0; }
  double score(int64_t u, int64_t x) const { return a_[u * e_ + x]; }
  double price(int64_t x) const { return price_[idx(x)]; }
  const std::vector<double>& prices() const { return price_; }

 private:
  static std::size_t idx(int64_t x) { return static_cast<std::size_t>(x); }
  MinHeap& heap(int64_t from, int64_t to) { return heaps_[static_cast<std::size_t>(from * e_ + to)]; }

  // The cheapest valid move from expert `from` to `to` (u in from, u not in to), or null.
  const Entry* cheapest(int64_t from, int64_t to) {
    MinHeap& h = heap(from, to);
    while (!h.empty() && !(in(h.top().second, from) && !in(h.top().second, to))) h.pop();
    return h.empty() ? nullptr : &h.top();
  }

  void set_in(int64_t u, int64_t x, char v) { in_[static_cast<std::size_t>(u * e_ + x)] = v; }

  // Pushes the moves of u valid now but not under `before` ([E] membership): x -> y with x
  // in u's set and y not. New ones have x just added, or y just removed (x kept).
  void push_new_moves(int64_t u, const std::vector<char>& before) {
    for (int64_t x = 0; x < e_; ++x) {
      if (!in(u, x)) continue;
      const bool added = before[idx(x)] == 0;
      for (int64_t y = 0; y < e_; ++y)
        if (!in(u, y) && (added || before[idx(y)] != 0)) heap(x, y).push({score(u, x) - score(u, y), u});
    }
  }

  const double* a_;
  int64_t n_, e_;
  std::vector<int64_t> cap_, load_;
  std::vector<double> price_;  // p_e; the potential of expert e is -p_e
  double pi_sink_ = 0.0;
  std::vector<char> in_;       // [n, E] membership
  std::vector<MinHeap> heaps_;  // [E, E]
};

}  // namespace

BalancedAssignment solve_balanced_assignment(const double* scores, int64_t n_tokens, int64_t n_experts, int64_t k,
                                             const std::vector<int64_t>& capacity) {
  if (n_tokens < 0 || n_experts < 1 || k < 1 || k > n_experts)
    throw std::invalid_argument("balanced assignment: need n >= 0 and 1 <= k <= E, got n=" + std::to_string(n_tokens) +
                                " k=" + std::to_string(k) + " E=" + std::to_string(n_experts));
  if (capacity.size() != static_cast<std::size_t>(n_experts))
    throw std::invalid_argument("balanced assignment: capacity has " + std::to_string(capacity.size()) + " entries, want E=" +
                                std::to_string(n_experts));
  int64_t total = 0;
  for (int64_t c : capacity) {
    if (c < 0 || c > n_tokens) throw std::invalid_argument("balanced assignment: a capacity outside [0, n]: " + std::to_string(c));
    total += c;
  }
  if (total != n_tokens * k)
    throw std::invalid_argument("balanced assignment: capacities sum to " + std::to_string(total) + ", want n*k=" +
                                std::to_string(n_tokens * k));
  Solver solver(scores, n_tokens, n_experts, capacity);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < k; ++j) solver.add_unit(t);
  BalancedAssignment out;
  out.prices = solver.prices();
  out.experts.reserve(static_cast<std::size_t>(n_tokens * k));
  std::vector<int64_t> mine;
  for (int64_t t = 0; t < n_tokens; ++t) {
    mine.clear();
    for (int64_t x = 0; x < n_experts; ++x)
      if (solver.in(t, x)) mine.push_back(x);
    std::stable_sort(mine.begin(), mine.end(), [&](int64_t a, int64_t b) { return solver.score(t, a) > solver.score(t, b); });
    for (int64_t x : mine) {
      out.experts.push_back(x);
      out.total += solver.score(t, x);
    }
  }
  return out;
}

}  // namespace moetb
