// The safetensors reader accepts well-formed files and rejects every kind of corruption
// with an error naming the file and, where there is one, the tensor.
#include "worker/engine/base/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/files.h"
#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

std::string MakeFile(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + std::string(data_bytes, '\x01');
}

absl::Status Parse(const std::string& bytes) {
  return ParseSafetensorsHeader(bytes, "test.safetensors").status();
}

TEST(Safetensors, ParsesTensorsAndMetadata) {
  std::string bytes = MakeFile(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"F32","shape":[],"data_offsets":[12,16]}})", 16);
  auto views = ParseSafetensorsHeader(bytes, "x");
  ASSERT_TRUE(views.ok()) << views.status();
  ASSERT_EQ(views->size(), 2u);
  EXPECT_EQ((*views)[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*views)[0].nbytes, 12u);
  EXPECT_EQ((*views)[1].dtype, DType::kF32);
}

TEST(Safetensors, RejectsCorruptHeaders) {
  struct Case { std::string bytes, expect; };
  std::vector<Case> cases = {
      {"abc", "too short"},
      {MakeFile("{", 0), "not a JSON object"},
      {MakeFile("[1]", 0), "not a JSON object"},
      {MakeFile(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1), "'a': unknown dtype"},
      {MakeFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "'a': shape x dtype"},
      {MakeFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "'a': data_offsets"},
      {MakeFile(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "'a': shape"},
      {MakeFile(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "'a': data_offsets"},
      {MakeFile(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", 6), "overlaps"},
  };
  for (const auto& c : cases) {
    absl::Status status = Parse(c.bytes);
    ASSERT_FALSE(status.ok()) << c.expect;
    EXPECT_NE(status.message().find(c.expect), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("test.safetensors"), std::string::npos) << status.message();
  }
  std::string huge(8, '\0');
  huge[6] = 1;  // a header length of 2^48 bytes
  EXPECT_NE(Parse(huge + "{}").message().find("exceeds"), std::string::npos);
  std::string past_end = MakeFile("{}", 0).substr(0, 8) + "{";
  EXPECT_NE(Parse(past_end).message().find("past the end"), std::string::npos);
}

TEST(Safetensors, TruncatedRealFileIsAnErrorNotACrash) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  std::string bytes = *ReadFile(testing::GoldenDir() + "/vectors.safetensors");
  for (size_t cut : {size_t{0}, size_t{7}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(Parse(bytes.substr(0, cut)).ok()) << "cut at " << cut;
  }
  EXPECT_TRUE(Parse(bytes).ok());
}

TEST(Safetensors, OpensByMmapAndFindsTensors) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto file = SafetensorsFile::Open(testing::GoldenDir() + "/tiny-sdxl.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorView* t = (*file)->Find("model.diffusion_model.input_blocks.0.0.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::kF16);
  EXPECT_EQ(t->shape.size(), 4u);
  EXPECT_EQ((*file)->Find("no.such.tensor"), nullptr);
  auto missing = SafetensorsFile::Open("/nonexistent/model.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace spriteforge::engine
