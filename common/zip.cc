#include "common/zip.h"

#include <zlib.h>

#include <limits>

#include "absl/strings/str_cat.h"

namespace spriteforge {
namespace {

// Every entry is dated 1980-01-01 00:00 (the format's first day): archives of the same
// files are the same bytes.
constexpr uint16_t kDosTime = 0;
constexpr uint16_t kDosDate = (1 << 5) | 1;
constexpr uint16_t kUtf8Names = 1 << 11;
constexpr uint16_t kVersion = 20;  // 2.0: folders; stored entries need no more

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v & 0xffff));
  Put16(out, static_cast<uint16_t>(v >> 16));
}

// The fields local headers and central directory entries share, from "version needed" on.
void PutCommon(std::string& out, uint32_t crc, uint32_t size, uint16_t name_size) {
  Put16(out, kVersion);
  Put16(out, kUtf8Names);
  Put16(out, 0);  // stored
  Put16(out, kDosTime);
  Put16(out, kDosDate);
  Put32(out, crc);
  Put32(out, size);  // compressed
  Put32(out, size);  // uncompressed
  Put16(out, name_size);
  Put16(out, 0);  // extra field
}

}  // namespace

absl::Status ZipWriter::Add(const std::string& name, std::string_view bytes) {
  constexpr uint64_t kMax = std::numeric_limits<uint32_t>::max();
  if (name.empty() || name.size() > 0xffff) return absl::InvalidArgumentError("zip: a file name of 1..65535 bytes");
  if (entries_ == 0xffff) return absl::ResourceExhaustedError("zip: more than 65535 files");
  if (out_.size() + bytes.size() + name.size() + 30 > kMax) {
    return absl::ResourceExhaustedError(absl::StrCat("zip: ", name, " would pass 4 GiB"));
  }
  const uint32_t offset = static_cast<uint32_t>(out_.size());
  const uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  const uint16_t name_size = static_cast<uint16_t>(name.size());

  Put32(out_, 0x04034b50);
  PutCommon(out_, crc, size, name_size);
  out_ += name;
  out_.append(bytes.data(), bytes.size());

  Put32(directory_, 0x02014b50);
  Put16(directory_, kVersion);  // made by (MS-DOS attributes)
  PutCommon(directory_, crc, size, name_size);
  Put16(directory_, 0);  // comment
  Put16(directory_, 0);  // disk
  Put16(directory_, 0);  // internal attributes
  Put32(directory_, 0);  // external attributes
  Put32(directory_, offset);
  directory_ += name;
  ++entries_;
  return absl::OkStatus();
}

std::string ZipWriter::Finish() {
  const uint32_t directory_offset = static_cast<uint32_t>(out_.size());
  out_ += directory_;
  Put32(out_, 0x06054b50);
  Put16(out_, 0);  // this disk
  Put16(out_, 0);  // the directory's disk
  Put16(out_, entries_);
  Put16(out_, entries_);
  Put32(out_, static_cast<uint32_t>(directory_.size()));
  Put32(out_, directory_offset);
  Put16(out_, 0);  // comment
  directory_.clear();
  entries_ = 0;
  return std::move(out_);
}

}  // namespace spriteforge
