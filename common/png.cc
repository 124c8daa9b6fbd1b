#include "common/png.h"

#include <png.h>

#include <csetjmp>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge {
namespace {

struct ReadCursor {
  const std::string* bytes;
  size_t offset;
};

void ReadFromString(png_structp png, png_bytep out, png_size_t length) {
  auto* cursor = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (cursor->offset + length > cursor->bytes->size()) png_error(png, "truncated PNG data");
  std::memcpy(out, cursor->bytes->data() + cursor->offset, length);
  cursor->offset += length;
}

void WriteToString(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

void FlushNothing(png_structp) {}

// Every chunk's declared length must fit in the file. libpng trusts a length up to 2 GB
// and allocates (and clears) the buffer before it finds the data missing.
bool ChunkLengthsFit(const std::string& bytes) {
  size_t offset = 8;
  while (offset + 8 <= bytes.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
    const size_t length = (size_t(p[0]) << 24) | (size_t(p[1]) << 16) | (size_t(p[2]) << 8) | p[3];
    if (length > bytes.size() - offset - 8) return false;
    if (std::memcmp(p + 4, "IEND", 4) == 0) break;
    offset += 12 + length;
  }
  return true;
}

// libpng reports errors by longjmp; keep its message so the Status can carry it.
void OnError(png_structp png, png_const_charp message) {
  auto* where = static_cast<std::string*>(png_get_error_ptr(png));
  if (where) *where = message;
  png_longjmp(png, 1);
}
void OnWarning(png_structp, png_const_charp) {}

constexpr int kMaxDimension = 16384;

}  // namespace

absl::StatusOr<std::string> EncodePng(const RasterImage& image, const PngText& text) {
  if (image.channels != 3 && image.channels != 4) {
    return absl::InvalidArgumentError("PNG encode: channels must be 3 or 4");
  }
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels) {
    return absl::InvalidArgumentError("PNG encode: pixel buffer does not match the size");
  }
  std::string error;
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, OnError, OnWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, nullptr);
    return absl::InternalError("PNG encode: out of memory");
  }
  std::vector<png_text> chunks(text.size());
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return absl::InternalError(absl::StrCat("PNG encode: ", error));
  }
  png_set_write_fn(png, &out, WriteToString, FlushNothing);
  png_set_IHDR(png, info, image.width, image.height, 8,
               image.channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (size_t i = 0; i < text.size(); ++i) {
    chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
    chunks[i].key = const_cast<char*>(text[i].first.c_str());
    chunks[i].text = const_cast<char*>(text[i].second.c_str());
    chunks[i].text_length = text[i].second.size();
  }
  if (!chunks.empty()) png_set_text(png, info, chunks.data(), static_cast<int>(chunks.size()));
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y) {
    png_write_row(png, const_cast<png_bytep>(image.pixels.data() + y * stride));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

absl::StatusOr<RasterImage> DecodePng(const std::string& bytes, PngText* text) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8)) {
    return absl::InvalidArgumentError("not a PNG file (bad signature)");
  }
  std::string error;
  if (!ChunkLengthsFit(bytes)) return absl::InvalidArgumentError("corrupt PNG: a chunk is longer than the file");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, OnError, OnWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return absl::InternalError("PNG decode: out of memory");
  }
  // Everything with a destructor lives outside the setjmp/longjmp span: libpng's errors jump
  // back here past any object made later, which would leak (the decoder checks results a
  // worker sends, so a corrupt one must cost nothing).
  RasterImage image;
  std::vector<png_bytep> rows;
  std::vector<uint8_t> row;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", error));
  }
  ReadCursor cursor{&bytes, 0};
  png_set_read_fn(png, &cursor, ReadFromString);
  png_set_user_limits(png, kMaxDimension, kMaxDimension);
  // No chunk can be larger than the file: a corrupt length fails fast, without a big buffer.
  png_set_chunk_malloc_max(png, bytes.size() + 1024);
  png_read_info(png, info);
  png_uint_32 width = png_get_image_width(png, info);
  png_uint_32 height = png_get_image_height(png, info);
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  bool alpha = (color & PNG_COLOR_MASK_ALPHA) != 0;
  if (png_get_valid(png, info, PNG_INFO_tRNS)) {
    png_set_tRNS_to_alpha(png);
    alpha = true;
  }
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.channels = alpha ? 4 : 3;
  if (png_get_rowbytes(png, info) != static_cast<size_t>(width) * image.channels) {
    png_error(png, "unsupported pixel layout");
  }
  // Deflate expands at most ~1032:1, so a header claiming more pixels than the file could
  // hold is corrupt; refusing it early avoids allocating gigabytes for a few bytes of input.
  const size_t raw = (static_cast<size_t>(width) * image.channels + 1) * height;
  if (raw > bytes.size() * 1032 + 65536) {
    png_error(png, "image size larger than the file could hold");
  }
  const size_t stride = static_cast<size_t>(width) * image.channels;
  if (png_get_interlace_type(png, info) == PNG_INTERLACE_NONE) {
    // Row by row into reserved (untouched) memory: a truncated file fails after the rows
    // it really holds, not after zero-filling the whole claimed image.
    image.pixels.reserve(stride * height);
    row.resize(stride);
    for (png_uint_32 y = 0; y < height; ++y) {
      png_read_row(png, row.data(), nullptr);
      image.pixels.insert(image.pixels.end(), row.begin(), row.end());
    }
  } else {
    image.pixels.resize(stride * height);
    rows.resize(height);
    for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.pixels.data() + y * stride;
    png_read_image(png, rows.data());
  }
  png_read_end(png, info);
  if (text) {
    png_textp chunks = nullptr;
    int count = png_get_text(png, info, &chunks, nullptr);
    for (int i = 0; i < count; ++i) {
      text->emplace_back(chunks[i].key, std::string(chunks[i].text, chunks[i].text_length));
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

absl::StatusOr<RasterImage> ReadPngFile(const std::string& path, PngText* text) {
  ASSIGN_OR_RETURN(auto bytes, ReadFile(path));
  auto image = DecodePng(bytes, text);
  if (!image.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", image.status().message()));
  return image;
}

absl::Status WritePngFile(const std::string& path, const RasterImage& image, const PngText& text) {
  ASSIGN_OR_RETURN(auto bytes, EncodePng(image, text));
  return WriteFileAtomic(path, bytes);
}

}  // namespace spriteforge
