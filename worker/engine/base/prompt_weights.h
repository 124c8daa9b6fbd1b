// A1111's prompt attention syntax and its long-prompt chunks, without torch:
//   (word) x1.1   ((word)) x1.21   [word] /1.1   (word:1.3) x1.3   \( \) \[ \] \\ literal
//   BREAK         ends the current 75-token chunk
// Prompts longer than 75 tokens are encoded in chunks of 75 (each framed by BOS/EOS to
// the encoder's 77); a chunk that would overflow moves the words after its last comma
// to the next one when that comma is within the last 20 tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/base/tokenizer.h"

namespace spriteforge::engine {

struct WeightedText {
  std::string text;
  double weight = 1.0;
  bool is_break = false;  // a BREAK between two runs (text "BREAK")
};

// The prompt as runs of text with their weights, neighbouring runs of equal weight
// merged, as A1111's parse_prompt_attention returns them. Unbalanced brackets close at
// the end; a ")" or "]" with nothing open is text. Error: a weight that is not a number.
absl::StatusOr<std::vector<WeightedText>> ParsePromptAttention(const std::string& prompt);

// One encoder input: kContextLength ids and the weight of each.
struct PromptChunk {
  std::vector<int64_t> ids;
  std::vector<float> weights;
};

struct ChunkedPrompt {
  std::vector<PromptChunk> chunks;  // at least one
  int token_count = 0;              // prompt tokens, BOS/EOS and padding excluded
  int dropped_tokens = 0;           // tokens beyond max_chunks, not encoded
  bool weighted = false;            // some weight differs from 1
};

// Tokenizes each run and fills chunks as A1111's tokenize_line does, keeping at most
// `max_chunks` chunks. Ids after a chunk's first EOS are the tokenizer's pad id.
ChunkedPrompt ChunkPrompt(const std::vector<WeightedText>& runs, const ClipTokenizer& tokenizer, int max_chunks);

// The chunk of an empty prompt (BOS, EOS, padding; weights 1): what shorter prompts of a
// batch are padded with.
PromptChunk EmptyChunk(const ClipTokenizer& tokenizer);

}  // namespace spriteforge::engine
