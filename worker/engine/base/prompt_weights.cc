#include "worker/engine/base/prompt_weights.h"

#include <cctype>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace spriteforge::engine {
namespace {

constexpr int kChunkLength = 75;     // prompt tokens per chunk
constexpr int kCommaBacktrack = 20;  // A1111's comma_padding_backtrack default
constexpr double kRoundMultiplier = 1.1;
constexpr double kSquareMultiplier = 1 / 1.1;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
// Python's \w on UTF-8 text: letters, digits, underscore; bytes of non-ASCII characters
// count as letters.
bool IsWord(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (static_cast<unsigned char>(c) & 0x80); }

// Length of a match of \s*\bBREAK\b\s* starting at `at`, or 0.
size_t BreakAt(const std::string& s, size_t at) {
  size_t i = at;
  while (i < s.size() && IsSpace(s[i])) ++i;
  if (s.compare(i, 5, "BREAK") != 0) return 0;
  if (i > 0 && IsWord(s[i - 1])) return 0;
  if (i + 5 < s.size() && IsWord(s[i + 5])) return 0;
  i += 5;
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i - at;
}

// A run of plain text, split at every BREAK as re.split does (leftmost matches).
void AppendText(const std::string& text, std::vector<WeightedText>& out) {
  size_t start = 0;
  for (size_t p = 0; p < text.size(); ++p) {
    if (size_t n = BreakAt(text, p)) {
      out.push_back({text.substr(start, p - start), 1.0});
      out.push_back({"BREAK", -1.0, true});
      start = p + n;
      p = start - 1;
    }
  }
  out.push_back({text.substr(start), 1.0});
}

// ":<spaces><number><spaces>)" at `at`: the match length and the number's text, or 0.
size_t WeightCloseAt(const std::string& s, size_t at, std::string* number) {
  size_t i = at + 1;
  while (i < s.size() && IsSpace(s[i])) ++i;
  const size_t begin = i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits = i;
  while (i < s.size() && (s[i] == '.' || std::isdigit(static_cast<unsigned char>(s[i])))) ++i;
  if (i == digits) return 0;
  *number = s.substr(begin, i - begin);
  while (i < s.size() && IsSpace(s[i])) ++i;
  if (i >= s.size() || s[i] != ')') return 0;
  return i + 1 - at;
}

}  // namespace

absl::StatusOr<std::vector<WeightedText>> ParsePromptAttention(const std::string& prompt) {
  std::vector<WeightedText> res;
  std::vector<size_t> round, square;
  auto multiply_range = [&](size_t start, double multiplier) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= multiplier;
  };
  size_t i = 0;
  while (i < prompt.size()) {
    const char c = prompt[i];
    if (c == '\\') {
      // \( \) \[ \] \\ are the character; a lone backslash is dropped.
      const bool escape = i + 1 < prompt.size() && std::string("()[]\\").find(prompt[i + 1]) != std::string::npos;
      res.push_back({escape ? std::string(1, prompt[i + 1]) : "", 1.0});
      i += escape ? 2 : 1;
    } else if (c == '(') {
      round.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square.push_back(res.size());
      ++i;
    } else if (c == ':') {
      std::string number;
      const size_t n = WeightCloseAt(prompt, i, &number);
      if (n > 0 && !round.empty()) {
        char* end = nullptr;
        const double weight = std::strtod(number.c_str(), &end);
        if (end != number.c_str() + number.size()) {
          return absl::InvalidArgumentError(absl::StrCat("prompt: weight '", number, "' is not a number"));
        }
        multiply_range(round.back(), weight);
        round.pop_back();
        i += n;
      } else {
        const size_t len = n > 0 ? n : 1;  // an unopened "(x:1.2)" close is text, like a lone ':'
        AppendText(prompt.substr(i, len), res);
        i += len;
      }
    } else if (c == ')' && !round.empty()) {
      multiply_range(round.back(), kRoundMultiplier);
      round.pop_back();
      ++i;
    } else if (c == ']' && !square.empty()) {
      multiply_range(square.back(), kSquareMultiplier);
      square.pop_back();
      ++i;
    } else if (c == ')' || c == ']') {
      AppendText(std::string(1, c), res);
      ++i;
    } else {
      size_t end = i;
      while (end < prompt.size() && std::string("\\()[]:").find(prompt[end]) == std::string::npos) ++end;
      AppendText(prompt.substr(i, end - i), res);
      i = end;
    }
  }
  for (size_t pos : round) multiply_range(pos, kRoundMultiplier);
  for (size_t pos : square) multiply_range(pos, kSquareMultiplier);
  if (res.empty()) res.push_back({"", 1.0});
  // Merge neighbours of equal weight (BREAKs stay apart: they are markers, not text).
  std::vector<WeightedText> merged;
  for (WeightedText& run : res) {
    if (!merged.empty() && !run.is_break && !merged.back().is_break && merged.back().weight == run.weight) {
      merged.back().text += run.text;
    } else {
      merged.push_back(std::move(run));
    }
  }
  return merged;
}

PromptChunk EmptyChunk(const ClipTokenizer& tokenizer) {
  PromptChunk chunk{{tokenizer.bos_id(), tokenizer.eos_id()}, {}};
  chunk.ids.resize(ClipTokenizer::kContextLength, tokenizer.pad_id());
  chunk.weights.assign(ClipTokenizer::kContextLength, 1.0f);
  return chunk;
}

ChunkedPrompt ChunkPrompt(const std::vector<WeightedText>& runs, const ClipTokenizer& tokenizer, int max_chunks) {
  ChunkedPrompt out;
  std::vector<PromptChunk> chunks;
  PromptChunk chunk;
  int last_comma = -1;
  std::vector<int> counts;  // prompt tokens of each finished chunk
  const int64_t comma = tokenizer.comma_id();
  auto next_chunk = [&] {
    counts.push_back(static_cast<int>(chunk.ids.size()));
    const size_t fill = kChunkLength - chunk.ids.size();
    chunk.ids.insert(chunk.ids.end(), fill, tokenizer.eos_id());
    chunk.weights.insert(chunk.weights.end(), fill, 1.0f);
    chunk.ids.insert(chunk.ids.begin(), tokenizer.bos_id());
    chunk.ids.push_back(tokenizer.eos_id());
    chunk.weights.insert(chunk.weights.begin(), 1.0f);
    chunk.weights.push_back(1.0f);
    // Everything after the first EOS is padding (the bigG tokenizer pads with another id).
    for (size_t k = 1, seen = 0; k < chunk.ids.size(); ++k) {
      if (seen) chunk.ids[k] = tokenizer.pad_id();
      if (chunk.ids[k] == tokenizer.eos_id()) seen = 1;
    }
    chunks.push_back(std::move(chunk));
    chunk = PromptChunk{};
    last_comma = -1;
  };
  for (const WeightedText& run : runs) {
    if (run.is_break) {
      next_chunk();
      continue;
    }
    if (run.weight != 1.0) out.weighted = true;
    for (int64_t token : tokenizer.Tokenize(run.text)) {
      if (token == comma) {
        last_comma = static_cast<int>(chunk.ids.size());
      } else if (static_cast<int>(chunk.ids.size()) == kChunkLength && last_comma != -1 &&
                 kChunkLength - last_comma <= kCommaBacktrack) {
        // The words after the last comma move to the next chunk together.
        PromptChunk moved{{chunk.ids.begin() + last_comma + 1, chunk.ids.end()},
                          {chunk.weights.begin() + last_comma + 1, chunk.weights.end()}};
        chunk.ids.resize(last_comma + 1);
        chunk.weights.resize(last_comma + 1);
        next_chunk();
        chunk = std::move(moved);
      }
      if (static_cast<int>(chunk.ids.size()) == kChunkLength) next_chunk();
      chunk.ids.push_back(token);
      chunk.weights.push_back(static_cast<float>(run.weight));
      ++out.token_count;
    }
  }
  if (!chunk.ids.empty() || chunks.empty()) next_chunk();
  for (size_t k = max_chunks; k < counts.size(); ++k) out.dropped_tokens += counts[k];
  if (static_cast<int>(chunks.size()) > max_chunks) chunks.resize(max_chunks);
  out.chunks = std::move(chunks);
  return out;
}

}  // namespace spriteforge::engine
