#include "worker/engine/base/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

// Real checkpoints have headers of a few hundred KB; anything far larger is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F16", DType::kF16, 2},  {"BF16", DType::kBF16, 2}, {"F32", DType::kF32, 4},
    {"F64", DType::kF64, 8},  {"I8", DType::kI8, 1},     {"U8", DType::kU8, 1},
    {"I16", DType::kI16, 2},  {"I32", DType::kI32, 4},   {"I64", DType::kI64, 8},
    {"BOOL", DType::kBool, 1},
};

// Debian's Abseil has its own string_view, so errors are assembled from std::string.
absl::Status Bad(std::string_view file, std::string_view tensor, const std::string& what) {
  std::string where(file);
  if (tensor.empty()) return absl::DataLossError(absl::StrCat(where, ": ", what));
  return absl::DataLossError(absl::StrCat(where, ": tensor '", std::string(tensor), "': ", what));
}

}  // namespace

size_t DTypeSize(DType dtype) {
  for (const auto& d : kDTypes) if (d.dtype == dtype) return d.size;
  return 0;
}

std::string_view DTypeName(DType dtype) {
  for (const auto& d : kDTypes) if (d.dtype == dtype) return d.name;
  return "?";
}

absl::StatusOr<std::vector<TensorView>> ParseSafetensorsHeader(std::string_view bytes,
                                                               std::string_view file) {
  if (bytes.size() < 8) return Bad(file, "", "too short for a safetensors header");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes) {
    return Bad(file, "", absl::StrCat("not a safetensors file (its first 8 bytes give a header length of ",
                                      header_len, ", which exceeds the ", kMaxHeaderBytes, "-byte limit)"));
  }
  if (header_len > bytes.size() - 8) {
    return Bad(file, "", absl::StrCat("header says ", header_len, " bytes but the file is ", bytes.size(),
                                      " bytes: it runs past the end (truncated, or not a safetensors file)"));
  }
  const std::string_view header = bytes.substr(8, header_len);
  const uint64_t data_size = bytes.size() - 8 - header_len;
  const char* data_base = bytes.data() + 8 + header_len;

  nlohmann::json doc = nlohmann::json::parse(header.begin(), header.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Bad(file, "", "not a safetensors file (header is not a JSON object)");

  std::vector<TensorView> views;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, spec] : doc.items()) {
    if (name == "__metadata__") continue;
    if (!spec.is_object()) return Bad(file, name, "entry is not an object");
    auto dtype_it = spec.find("dtype");
    auto shape_it = spec.find("shape");
    auto offsets_it = spec.find("data_offsets");
    if (dtype_it == spec.end() || !dtype_it->is_string()) return Bad(file, name, "missing dtype");
    if (shape_it == spec.end() || !shape_it->is_array()) return Bad(file, name, "missing shape");
    if (offsets_it == spec.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return Bad(file, name, "data_offsets must be [begin, end]");
    }
    TensorView view;
    view.name = name;
    const std::string dtype_name = dtype_it->get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const auto& d : kDTypes) if (dtype_name == d.name) info = &d;
    if (!info) return Bad(file, name, absl::StrCat("unknown dtype '", dtype_name, "'"));
    view.dtype = info->dtype;
    uint64_t elements = 1;
    for (const auto& dim : *shape_it) {
      if (!dim.is_number_unsigned()) return Bad(file, name, "shape entries must be non-negative integers");
      uint64_t d = dim.get<uint64_t>();
      if (d != 0 && elements > (uint64_t{1} << 62) / d) return Bad(file, name, "shape overflows");
      elements *= d;
      view.shape.push_back(static_cast<int64_t>(d));
    }
    const auto& offsets = *offsets_it;
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return Bad(file, name, "data_offsets must be non-negative integers");
    }
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return Bad(file, name, absl::StrCat("data_offsets [", begin, ", ", end,
                                          "] lie outside the ", data_size, "-byte data area"));
    }
    const uint64_t expected = elements * info->size;
    if (end - begin != expected) {
      return Bad(file, name, absl::StrCat("shape x dtype needs ", expected, " bytes but offsets give ",
                                          end - begin));
    }
    view.data = data_base + begin;
    view.nbytes = end - begin;
    ranges.emplace_back(begin, end);
    views.push_back(std::move(view));
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = ranges[order[k - 1]];
    const auto& cur = ranges[order[k]];
    if (cur.first < prev.second && cur.second > cur.first) {
      return Bad(file, views[order[k]].name,
                 absl::StrCat("data overlaps tensor '", views[order[k - 1]].name, "'"));
    }
  }
  return views;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_size_ = static_cast<size_t>(st.st_size);
  if (file->mapping_size_ > 0) {
    void* map = ::mmap(nullptr, file->mapping_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
    }
    file->mapping_ = map;
  }
  ::close(fd);
  ASSIGN_OR_RETURN(auto views, ParseSafetensorsHeader(
      std::string_view(static_cast<const char*>(file->mapping_), file->mapping_size_), path));
  file->tensors_ = std::move(views);
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_) ::munmap(mapping_, mapping_size_);
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace spriteforge::engine
