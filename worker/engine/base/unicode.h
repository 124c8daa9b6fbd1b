// The small slice of Unicode the CLIP tokenizer needs: UTF-8 decoding and encoding, letter
// and number classes (as the pre-tokenizer's \p{L} and \p{N}), whitespace, and lowercasing.
// Covers Latin, Greek, Cyrillic, CJK, kana and Hangul; other scripts count as symbols.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spriteforge::engine::unicode {

std::vector<char32_t> DecodeUtf8(const std::string& text);  // invalid bytes -> U+FFFD
std::string EncodeUtf8(const std::vector<char32_t>& code_points);
void AppendUtf8(char32_t cp, std::string& out);

bool IsLetter(char32_t cp);
bool IsNumber(char32_t cp);
bool IsSpace(char32_t cp);
char32_t ToLower(char32_t cp);

}  // namespace spriteforge::engine::unicode
