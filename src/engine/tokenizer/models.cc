// BPE merge loops. Both use a doubly linked list of symbols and a heap of candidate pairs, so a
// word of n symbols costs O(n log n) instead of rescanning all pairs after each merge.
#include "models.h"

#include <cstdio>
#include <queue>

#include "flagstone/base/error.h"
#include "utf8.h"

namespace flagstone::engine::tok {

void Vocab::add(std::string token, TokenId id, const std::string& where) {
  FS_CHECK(id >= 0 && id < (1 << 30), kFormat, where, ": token \"", token, "\" has id ", id,
           " out of range");
  auto idx = static_cast<std::size_t>(id);
  if (idx >= tokens_.size()) {
    tokens_.resize(idx + 1);
    present_.resize(idx + 1, false);
  }
  tokens_[idx] = token;
  present_[idx] = true;
  // Duplicate strings (some GGUF vocabularies repeat padding tokens): the first id wins, as in
  // llama.cpp, while every id still decodes.
  ids_.emplace(std::move(token), id);
}

bool PieceCache::get(std::string_view piece, std::vector<TokenId>& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = map_.find(piece);
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void PieceCache::put(std::string_view piece, const std::vector<TokenId>& ids,
                     std::size_t from) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (map_.size() >= capacity_) return;  // as HF: a full cache stops growing
  map_.emplace(std::string(piece),
               std::vector<TokenId>(ids.begin() + static_cast<long>(from), ids.end()));
}

std::string byte_token_name(std::uint8_t byte) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", byte);
  return buf;
}

namespace {
// Fills `ids` with the byte tokens if the vocabulary has all 256 of them.
bool find_byte_tokens(const Vocab& vocab, TokenId (&ids)[256]) {
  for (int b = 0; b < 256; ++b) {
    auto id = vocab.find(byte_token_name(static_cast<std::uint8_t>(b)));
    if (!id) return false;
    ids[b] = *id;
  }
  return true;
}

struct Symbol {
  TokenId id;
  int prev, next;     // -1 at the ends
  std::uint32_t len;  // bytes of the piece covered; 0 once merged away
};
}  // namespace

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  merges_.reserve(merges.size() * 2);
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b), ir = vocab_.find(a + b);
    FS_CHECK(ia && ib, kFormat, where, ": merge ", rank, " (\"", a, "\" \"", b,
             "\") uses a token that is not in the vocabulary");
    FS_CHECK(ir.has_value(), kFormat, where, ": merge ", rank, " (\"", a, "\" \"", b,
             "\") produces \"", a + b, "\" which is not in the vocabulary");
    // An earlier rank wins when a pair is listed twice.
    merges_.emplace(key(*ia, *ib), Merge{static_cast<std::uint32_t>(rank), *ir});
  }
  if (options_.unk_token) {
    unk_id_ = vocab_.find(*options_.unk_token);
    FS_CHECK(unk_id_.has_value(), kFormat, where, ": unk_token \"", *options_.unk_token,
             "\" is not in the vocabulary");
  }
  if (options_.byte_fallback) have_byte_ids_ = find_byte_tokens(vocab_, byte_ids_);
}

void BpeModel::tokenize(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = vocab_.find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  if (cache_.get(piece, out)) return;
  std::size_t from = out.size();
  merge_word(piece, out);
  cache_.put(piece, out, from);
}

void BpeModel::merge_word(std::string_view piece, std::vector<TokenId>& out) const {
  std::vector<Symbol> syms;
  syms.reserve(piece.size());
  auto push = [&](TokenId id, std::size_t len) {
    int idx = static_cast<int>(syms.size());
    syms.push_back({id, idx - 1, -1, static_cast<std::uint32_t>(len)});
    if (idx > 0) syms[idx - 1].next = idx;
  };
  // Initial symbols, one per character, with HF's unknown handling: byte fallback when every
  // byte token exists, else the unknown token (consecutive ones fused if asked), else dropped.
  // A pending run of unknown characters: its byte length (0 = none).
  std::size_t unk_len = 0;
  auto flush_unk = [&] {
    if (unk_len > 0) push(*unk_id_, unk_len);
    unk_len = 0;
  };
  for (std::size_t i = 0; i < piece.size();) {
    std::size_t n = utf8_unit_length(piece, i);
    std::string_view ch = piece.substr(i, n);
    i += n;
    if (auto id = vocab_.find(ch)) {
      flush_unk();
      push(*id, n);
      continue;
    }
    if (options_.byte_fallback && have_byte_ids_) {
      for (char c : ch) push(byte_ids_[static_cast<std::uint8_t>(c)], 1);
      continue;
    }
    if (unk_id_) {
      if (!options_.fuse_unk) flush_unk();
      unk_len += n;
    }
  }
  flush_unk();

  struct Cand {
    std::uint32_t rank;
    int pos;
    TokenId result;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int left) {
    int right = syms[left].next;
    if (right < 0) return;
    auto it = merges_.find(key(syms[left].id, syms[right].id));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.result});
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) consider(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Symbol& left = syms[c.pos];
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = syms[left.next];
    // Stale entry: one side changed since it was queued.
    auto it = merges_.find(key(left.id, right.id));
    if (it == merges_.end() || it->second.rank != c.rank || it->second.result != c.result) continue;
    left.id = c.result;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

SpmModel::SpmModel(Vocab vocab, std::vector<float> scores, std::optional<TokenId> unk_id,
                   const std::string& where)
    : vocab_(std::move(vocab)), scores_(std::move(scores)), unk_id_(unk_id) {
  FS_CHECK(scores_.empty() || scores_.size() >= vocab_.size(), kFormat, where, ": ", scores_.size(),
           " scores for ", vocab_.size(), " tokens");
  have_byte_ids_ = find_byte_tokens(vocab_, byte_ids_);
}

void SpmModel::tokenize(std::string_view piece, std::vector<TokenId>& out) const {
  struct Sym {
    std::size_t begin, len;
    int prev, next;
  };
  std::vector<Sym> syms;
  for (std::size_t i = 0; i < piece.size();) {
    std::size_t n = utf8_unit_length(piece, i);
    int idx = static_cast<int>(syms.size());
    syms.push_back({i, n, idx - 1, -1});
    if (idx > 0) syms[idx - 1].next = idx;
    i += n;
  }
  struct Cand {
    float score;
    int left;
    std::size_t len;
    TokenId id;
    bool operator<(const Cand& o) const {
      return score != o.score ? score < o.score : left > o.left;  // max score, then leftmost
    }
  };
  std::priority_queue<Cand> heap;
  auto consider = [&](int left) {
    if (left < 0) return;
    int right = syms[left].next;
    if (right < 0) return;
    std::size_t len = syms[left].len + syms[right].len;
    if (auto id = vocab_.find(piece.substr(syms[left].begin, len))) {
      float score = scores_.empty() ? 0.0f : scores_[static_cast<std::size_t>(*id)];
      heap.push({score, left, len, *id});
    }
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) consider(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& left = syms[c.left];
    if (left.len == 0 || left.next < 0 || left.len + syms[left.next].len != c.len) continue;
    Sym& right = syms[left.next];
    left.len = c.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = c.left;
    if (left.prev >= 0) consider(left.prev);
    consider(c.left);
  }
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    std::string_view text = piece.substr(syms[i].begin, syms[i].len);
    if (auto id = vocab_.find(text)) {
      out.push_back(*id);
    } else if (have_byte_ids_) {
      for (char ch : text) out.push_back(byte_ids_[static_cast<std::uint8_t>(ch)]);
    } else if (unk_id_) {
      out.push_back(*unk_id_);
    }
  }
}

}  // namespace flagstone::engine::tok
