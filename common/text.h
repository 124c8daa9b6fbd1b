// Checks on text that arrives from outside (manifests, workers): UTF-8 validity, length
// in characters, control characters (terminal escapes) and the charset of names that end
// up in paths, logs and lookups.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace spriteforge {

// Code points in `s`, or nullopt when `s` is not valid UTF-8 (overlong forms, surrogates
// and values past U+10FFFF are invalid).
std::optional<size_t> Utf8Length(const std::string& s);

// True when `s` holds a C0 control (other than those in `allowed`), DEL or a C1 control
// (U+0080..U+009F): ESC and CSI start terminal escape sequences.
bool HasControlCharacters(const std::string& s, const std::string& allowed = "");

// A name safe in paths and lookups: 1..max_length characters of A-Z a-z 0-9 . _ -, not
// starting with '.' or '-' (so never "..", "../x" or an option-like "-x").
bool IsSafeName(const std::string& s, size_t max_length = 128);

// "" when `s` is valid UTF-8 of at most `max_chars` characters without control characters
// (other than those in `allowed`), else the problem, e.g. "longer than 200 characters".
std::string TextProblem(const std::string& s, size_t max_chars, const std::string& allowed = "");

// Orders names as people number frames: digit runs compare as numbers, so "2_102" comes
// before "10_110" (a plain string order puts it after "19_119").
bool NaturalLess(const std::string& a, const std::string& b);

// How many single-character insertions, deletions and substitutions turn `a` into `b`
// (for "did you mean" suggestions).
size_t EditDistance(const std::string& a, const std::string& b);

}  // namespace spriteforge
