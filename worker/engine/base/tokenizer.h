// CLIP byte-level BPE tokenizer, as SDXL's two text encoders use it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge::engine {

class ClipTokenizer {
 public:
  static constexpr int kContextLength = 77;

  // `dir` holds vocab.json and merges.txt. `pad_token` is "<|endoftext|>" for the CLIP-L
  // tokenizer and "!" for the bigG one (which then treats "!" as a special token).
  static absl::StatusOr<std::unique_ptr<ClipTokenizer>> Load(const std::string& dir,
                                                             const std::string& pad_token);

  // For models with random weights and no vocabulary (benchmarks, the built-in demo
  // model): one id per UTF-8 byte, framed like CLIP's. Never used for real checkpoints.
  static std::unique_ptr<ClipTokenizer> ByteFallback(int64_t pad_id);

  // BOS, tokens (truncated to 75), EOS, then padding: exactly kContextLength ids.
  std::vector<int64_t> Encode(const std::string& text) const;
  // The text's tokens alone: no BOS/EOS, no limit.
  virtual std::vector<int64_t> Tokenize(const std::string& text) const = 0;
  // The id of "," as a word of its own; -1 without one.
  virtual int64_t comma_id() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual ~ClipTokenizer() = default;
};

}  // namespace spriteforge::engine
