#include "worker/engine/base/unicode.h"

namespace spriteforge::engine::unicode {

std::vector<char32_t> DecodeUtf8(const std::string& text) {
  std::vector<char32_t> out;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int extra;
    char32_t cp;
    if (c < 0x80) { extra = 0; cp = c; }
    else if ((c >> 5) == 0x6) { extra = 1; cp = c & 0x1F; }
    else if ((c >> 4) == 0xE) { extra = 2; cp = c & 0x0F; }
    else if ((c >> 3) == 0x1E) { extra = 3; cp = c & 0x07; }
    else { out.push_back(0xFFFD); ++i; continue; }
    bool ok = i + extra < n;
    for (int k = 1; ok && k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (next & 0x3F);
    }
    if (!ok) { out.push_back(0xFFFD); ++i; continue; }
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string EncodeUtf8(const std::vector<char32_t>& code_points) {
  std::string out;
  for (char32_t cp : code_points) AppendUtf8(cp, out);
  return out;
}

bool IsLetter(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  if (c < 0xAA) return false;
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  if (c >= 0xC0 && c <= 0x24F) return c != 0xD7 && c != 0xF7;  // Latin-1 and Latin Extended
  if (c >= 0x250 && c <= 0x2AF) return true;                   // IPA
  if (c >= 0x370 && c <= 0x3FF) return c != 0x375 && c != 0x37E && c != 0x384 && c != 0x385 && c != 0x387;
  if (c >= 0x400 && c <= 0x52F) return !(c >= 0x482 && c <= 0x489);  // Cyrillic
  if (c >= 0x5D0 && c <= 0x5EA) return true;                          // Hebrew
  if (c >= 0x620 && c <= 0x64A) return true;                          // Arabic
  if (c >= 0xE01 && c <= 0xE30) return true;                          // Thai
  if (c >= 0x1E00 && c <= 0x1FFF) return true;                        // Latin/Greek extended
  if (c >= 0x3041 && c <= 0x3096) return true;                        // Hiragana
  if (c >= 0x30A1 && c <= 0x30FA) return true;                        // Katakana
  if (c >= 0x3400 && c <= 0x4DBF) return true;                        // CJK extension A
  if (c >= 0x4E00 && c <= 0x9FFF) return true;                        // CJK
  if (c >= 0xAC00 && c <= 0xD7A3) return true;                        // Hangul
  if (c >= 0xF900 && c <= 0xFAFF) return true;                        // CJK compatibility
  if (c >= 0xFF21 && c <= 0xFF3A) return true;                        // fullwidth Latin
  if (c >= 0xFF41 && c <= 0xFF5A) return true;
  return false;
}

bool IsNumber(char32_t c) {
  if (c >= '0' && c <= '9') return true;
  if (c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE)) return true;
  if (c >= 0x660 && c <= 0x669) return true;    // Arabic-Indic digits
  if (c >= 0x2070 && c <= 0x2079 && c != 0x2071 && c != 0x2072 && c != 0x2073) return true;
  if (c >= 0x2080 && c <= 0x2089) return true;  // subscripts
  if (c >= 0x2150 && c <= 0x2189) return true;  // fractions and Roman numerals
  if (c >= 0x2460 && c <= 0x249B) return true;  // circled numbers
  if (c >= 0xFF10 && c <= 0xFF19) return true;  // fullwidth digits
  return false;
}

bool IsSpace(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x1F || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

char32_t ToLower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c <= 0xDE) return c == 0xD7 ? c : c + 32;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';
    if (c >= 0x139 && c <= 0x148) return (c % 2 == 1) ? c + 1 : c;
    if (c >= 0x179 && c <= 0x17E) return (c % 2 == 1) ? c + 1 : c;
    if (c == 0x178) return 0xFF;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
    return c;
  }
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;  // Greek capitals
  if (c >= 0x410 && c <= 0x42F) return c + 32;                // Cyrillic capitals
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

}  // namespace spriteforge::engine::unicode
