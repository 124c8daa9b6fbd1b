#include "worker/engine/src/prompt_encoder.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "worker/engine/base/prompt_weights.h"

namespace spriteforge::engine {
namespace {

constexpr int64_t kLength = ClipTokenizer::kContextLength;

// Mean-preserving emphasis on one chunk's hidden states [77, C], in float32.
torch::Tensor Emphasize(const torch::Tensor& hidden, const std::vector<float>& weights) {
  torch::Tensor z = hidden.to(torch::kFloat);
  torch::Tensor original_mean = z.mean();
  torch::Tensor w = torch::tensor(weights).to(z.device()).unsqueeze(1);
  z = z * w;
  z = z * (original_mean / z.mean());
  return z.to(hidden.scalar_type());
}

}  // namespace

absl::StatusOr<EncodedPrompts> EncodePrompts(const std::vector<std::string>& prompts, const ClipTokenizer& tokenizer,
                                             const ClipTokenizer& tokenizer_2, ClipTextEncoderImpl& encoder,
                                             ClipTextEncoderImpl& encoder_2, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<ChunkedPrompt> first, second;
  EncodedPrompts out;
  size_t chunks = 1;
  for (const std::string& prompt : prompts) {
    auto runs = ParsePromptAttention(prompt);
    if (!runs.ok()) return absl::InvalidArgumentError(absl::StrCat(runs.status().message(), " in '", prompt, "'"));
    first.push_back(ChunkPrompt(*runs, tokenizer, kMaxPromptChunks));
    second.push_back(ChunkPrompt(*runs, tokenizer_2, kMaxPromptChunks));
    chunks = std::max({chunks, first.back().chunks.size(), second.back().chunks.size()});
    std::string note;
    if (const ChunkedPrompt& c = first.back(); c.dropped_tokens > 0) {
      note = absl::StrCat("prompt cut: its last ", c.dropped_tokens, " of ", c.token_count, " tokens are beyond the limit of ",
                          kMaxPromptChunks * 75, " and were not encoded");
      spdlog::warn("{}: '{}'", note, prompt);
    }
    out.notes.push_back(note);
  }
  const int64_t n = static_cast<int64_t>(prompts.size()), k = static_cast<int64_t>(chunks);
  auto ids_of = [&](const std::vector<ChunkedPrompt>& chunked, const ClipTokenizer& t) {
    std::vector<int64_t> ids;
    const PromptChunk empty = EmptyChunk(t);
    for (const ChunkedPrompt& c : chunked) {
      for (size_t i = 0; i < chunks; ++i) {
        const PromptChunk& chunk = i < c.chunks.size() ? c.chunks[i] : empty;
        ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
      }
    }
    return torch::tensor(ids, torch::kLong).view({n * k, kLength}).to(device);
  };
  ClipOutput out1 = encoder.forward(ids_of(first, tokenizer));
  ClipOutput out2 = encoder_2.forward(ids_of(second, tokenizer_2));
  for (auto [chunked, hidden] : {std::pair{&first, &out1.penultimate}, std::pair{&second, &out2.penultimate}}) {
    for (int64_t p = 0; p < n; ++p) {
      const ChunkedPrompt& c = (*chunked)[p];
      if (!c.weighted) continue;
      for (size_t i = 0; i < c.chunks.size(); ++i) {
        const std::vector<float>& w = c.chunks[i].weights;
        if (std::all_of(w.begin(), w.end(), [](float v) { return v == 1.0f; })) continue;
        const int64_t row = p * k + static_cast<int64_t>(i);
        (*hidden)[row].copy_(Emphasize((*hidden)[row], w));
      }
    }
  }
  out.context = torch::cat({out1.penultimate, out2.penultimate}, -1).view({n, k * kLength, -1});
  out.pooled = out2.pooled.view({n, k, -1}).select(1, 0);
  return out;
}

}  // namespace spriteforge::engine
