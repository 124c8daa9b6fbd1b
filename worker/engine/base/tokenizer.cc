#include "worker/engine/base/tokenizer.h"

#include <climits>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "worker/engine/base/unicode.h"

namespace spriteforge::engine {
namespace {

constexpr char kBos[] = "<|startoftext|>";
constexpr char kEos[] = "<|endoftext|>";
constexpr char kEndOfWord[] = "</w>";

// GPT-2 style byte-to-unicode table: printable bytes map to themselves, the rest to
// code points from U+0100 up, so every byte sequence becomes a visible string.
std::vector<std::string> ByteEncoder() {
  std::vector<std::string> table(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    std::string s;
    unicode::AppendUtf8(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++), s);
    table[b] = s;
  }
  return table;
}

class BpeTokenizer : public ClipTokenizer {
 public:
  std::vector<int64_t> Tokenize(const std::string& text) const override {
    std::vector<int64_t> ids;
    for (const Segment& segment : SplitSpecial(text)) {
      if (segment.special_id >= 0) {
        ids.push_back(segment.special_id);
        continue;
      }
      for (const std::string& word : PreTokenize(Normalize(segment.text))) {
        for (int64_t id : Bpe(word)) ids.push_back(id);
      }
    }
    return ids;
  }
  int64_t comma_id() const override {
    auto it = vocab_.find(std::string(",") + kEndOfWord);
    return it == vocab_.end() ? -1 : it->second;
  }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<std::string, int> ranks_;  // "left right" -> merge priority
  std::vector<std::string> byte_encoder_ = ByteEncoder();
  std::vector<std::pair<std::string, int64_t>> specials_;  // matched verbatim in the text
  int64_t bos_ = 0, eos_ = 0, pad_ = 0;

 private:
  struct Segment {
    std::string text;
    int64_t special_id = -1;
  };

  // Special tokens written in the prompt stay special tokens (longest match first).
  std::vector<Segment> SplitSpecial(const std::string& text) const {
    std::vector<Segment> out;
    std::string pending;
    size_t i = 0;
    while (i < text.size()) {
      const std::pair<std::string, int64_t>* hit = nullptr;
      for (const auto& special : specials_) {
        if (text.compare(i, special.first.size(), special.first) == 0 &&
            (!hit || special.first.size() > hit->first.size())) {
          hit = &special;
        }
      }
      if (hit) {
        if (!pending.empty()) out.push_back({std::move(pending)});
        pending.clear();
        out.push_back({"", hit->second});
        i += hit->first.size();
      } else {
        pending += text[i++];
      }
    }
    if (!pending.empty()) out.push_back({std::move(pending)});
    return out;
  }

  // Whitespace runs collapse to one space; everything is lowercased.
  static std::vector<char32_t> Normalize(const std::string& text) {
    std::vector<char32_t> out;
    for (char32_t cp : unicode::DecodeUtf8(text)) {
      if (unicode::IsSpace(cp)) {
        if (out.empty() || out.back() != ' ') out.push_back(' ');
      } else {
        out.push_back(unicode::ToLower(cp));
      }
    }
    return out;
  }

  // CLIP's pre-tokenizer: contractions, runs of letters, single digits, runs of anything
  // else that is not a space; alternatives tried in that order at each position.
  static std::vector<std::string> PreTokenize(const std::vector<char32_t>& cps) {
    static const char* kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    std::vector<std::string> words;
    size_t i = 0;
    while (i < cps.size()) {
      if (unicode::IsSpace(cps[i])) { ++i; continue; }
      size_t end = i;
      if (cps[i] == '\'') {
        for (const char* c : kContractions) {
          size_t len = std::char_traits<char>::length(c);
          bool match = i + len <= cps.size();
          for (size_t k = 0; match && k < len; ++k) match = cps[i + k] == static_cast<char32_t>(c[k]);
          if (match) { end = i + len; break; }
        }
      }
      if (end == i && unicode::IsLetter(cps[i])) {
        while (end < cps.size() && unicode::IsLetter(cps[end])) ++end;
      } else if (end == i && unicode::IsNumber(cps[i])) {
        end = i + 1;
      } else if (end == i) {
        while (end < cps.size() && !unicode::IsSpace(cps[end]) && !unicode::IsLetter(cps[end]) &&
               !unicode::IsNumber(cps[end])) {
          ++end;
        }
      }
      words.push_back(unicode::EncodeUtf8(std::vector<char32_t>(cps.begin() + i, cps.begin() + end)));
      i = end;
    }
    return words;
  }

  std::vector<int64_t> Bpe(const std::string& word) const {
    std::vector<std::string> symbols;
    for (unsigned char b : word) symbols.push_back(byte_encoder_[b]);
    symbols.back() += kEndOfWord;
    while (symbols.size() > 1) {
      int best_rank = INT_MAX;
      size_t best = 0;
      for (size_t k = 0; k + 1 < symbols.size(); ++k) {
        auto it = ranks_.find(symbols[k] + " " + symbols[k + 1]);
        if (it != ranks_.end() && it->second < best_rank) {
          best_rank = it->second;
          best = k;
        }
      }
      if (best_rank == INT_MAX) break;
      const std::string left = symbols[best], right = symbols[best + 1];
      std::vector<std::string> merged;
      for (size_t k = 0; k < symbols.size(); ++k) {
        if (k + 1 < symbols.size() && symbols[k] == left && symbols[k + 1] == right) {
          merged.push_back(left + right);
          ++k;
        } else {
          merged.push_back(symbols[k]);
        }
      }
      symbols = std::move(merged);
    }
    std::vector<int64_t> ids;
    for (const std::string& s : symbols) {
      auto it = vocab_.find(s);
      ids.push_back(it == vocab_.end() ? eos_ : it->second);  // unknown -> <|endoftext|>, as CLIP's unk
    }
    return ids;
  }
};

class ByteTokenizer : public ClipTokenizer {
 public:
  explicit ByteTokenizer(int64_t pad) : pad_(pad) {}
  std::vector<int64_t> Tokenize(const std::string& text) const override {
    std::vector<int64_t> ids;
    for (unsigned char c : text) ids.push_back(256 + c);
    return ids;
  }
  int64_t comma_id() const override { return 256 + ','; }
  int64_t bos_id() const override { return kBosId; }
  int64_t eos_id() const override { return kEosId; }
  int64_t pad_id() const override { return pad_; }

 private:
  static constexpr int64_t kBosId = 49406, kEosId = 49407;
  int64_t pad_;
};

}  // namespace

std::vector<int64_t> ClipTokenizer::Encode(const std::string& text) const {
  std::vector<int64_t> ids = {bos_id()};
  for (int64_t id : Tokenize(text)) {
    if (ids.size() + 1 >= kContextLength) break;
    ids.push_back(id);
  }
  ids.push_back(eos_id());
  ids.resize(kContextLength, pad_id());
  return ids;
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::ByteFallback(int64_t pad_id) {
  return std::make_unique<ByteTokenizer>(pad_id);
}

absl::StatusOr<std::unique_ptr<ClipTokenizer>> ClipTokenizer::Load(const std::string& dir,
                                                                   const std::string& pad_token) {
  auto tokenizer = std::make_unique<BpeTokenizer>();
  const std::string vocab_path = dir + "/vocab.json";
  ASSIGN_OR_RETURN(auto vocab_text, ReadFile(vocab_path));
  nlohmann::json vocab = nlohmann::json::parse(vocab_text, nullptr, false);
  if (vocab.is_discarded() || !vocab.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": not a JSON object of token ids"));
  }
  for (auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": id of '", token, "' is not an integer"));
    }
    tokenizer->vocab_[token] = id.get<int64_t>();
  }
  const std::string merges_path = dir + "/merges.txt";
  ASSIGN_OR_RETURN(auto merges_text, ReadFile(merges_path));
  std::istringstream merges(merges_text);
  std::string line;
  int rank = 0;
  while (std::getline(merges, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    if (line.find(' ') == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(merges_path, ":", rank + 2, ": expected 'left right'"));
    }
    tokenizer->ranks_.emplace(line, rank++);
  }
  for (const std::string& name : {std::string(kBos), std::string(kEos), pad_token}) {
    if (!tokenizer->vocab_.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": missing special token '", name, "'"));
    }
  }
  tokenizer->bos_ = tokenizer->vocab_[kBos];
  tokenizer->eos_ = tokenizer->vocab_[kEos];
  tokenizer->pad_ = tokenizer->vocab_[pad_token];
  tokenizer->specials_ = {{kBos, tokenizer->bos_}, {kEos, tokenizer->eos_}};
  if (pad_token != kEos) tokenizer->specials_.push_back({pad_token, tokenizer->pad_});
  return std::unique_ptr<ClipTokenizer>(std::move(tokenizer));
}

}  // namespace spriteforge::engine
