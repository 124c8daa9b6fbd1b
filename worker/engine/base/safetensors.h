// Safetensors reader: the file is mapped read-only and every header field is validated
// before any tensor is touched, so a truncated or corrupt file yields one error naming
// the file and the tensor, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge::engine {

enum class DType { kF16, kBF16, kF32, kF64, kI8, kU8, kI16, kI32, kI64, kBool };

size_t DTypeSize(DType dtype);
std::string_view DTypeName(DType dtype);  // as written in safetensors: "F16", "BF16", ...

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping; valid while the file lives
  size_t nbytes = 0;
};

// Parses and validates a header: 8-byte little-endian length (bounded), JSON object of
// {name: {dtype, shape, data_offsets}} plus optional "__metadata__"; known dtype, shape
// product x dtype size equals the byte length, offsets inside the data area and not
// overlapping. `data_size` is the number of bytes after the header. Pure: used by the
// fuzzer. Views' data pointers are offsets from `data_base`.
absl::StatusOr<std::vector<TensorView>> ParseSafetensorsHeader(std::string_view file_bytes,
                                                               std::string_view file_name);

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(std::string_view name) const;  // nullptr if absent

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace spriteforge::engine
