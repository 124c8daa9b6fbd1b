// Prompts to SDXL conditioning the way A1111 does it: attention weights, chunks of 75
// tokens concatenated along the sequence, the pooled vector from the first chunk.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "worker/engine/base/tokenizer.h"
#include "worker/engine/src/clip_text_encoder.h"

namespace spriteforge::engine {

struct EncodedPrompts {
  torch::Tensor context;           // [N, chunks * 77, C1 + C2], model dtype
  torch::Tensor pooled;            // [N, P]
  std::vector<std::string> notes;  // per prompt: "" or why it was cut
};

// Chunks per prompt at most (600 tokens); the rest of a longer prompt is dropped and
// noted. Every prompt of one call gets the same number of chunks, the shorter ones padded
// with empty-prompt chunks, as A1111 pads the prompts of one batch.
inline constexpr int kMaxPromptChunks = 8;

// Encodes each prompt with both encoders. Weighted chunks have their hidden states scaled
// per token by the weights, then rescaled to keep their original mean (A1111's
// "Original" emphasis), per encoder and per chunk. A prompt of at most 75 tokens without
// weights gives exactly the plain 77-token encoding.
absl::StatusOr<EncodedPrompts> EncodePrompts(const std::vector<std::string>& prompts, const ClipTokenizer& tokenizer,
                                             const ClipTokenizer& tokenizer_2, ClipTextEncoderImpl& encoder,
                                             ClipTextEncoderImpl& encoder_2, const torch::Device& device);

}  // namespace spriteforge::engine
