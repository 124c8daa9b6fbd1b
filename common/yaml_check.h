// Checks a YAML (or JSON) document's shape before it is loaded, reading only its parse
// events, so hostile input costs time proportional to its length: nesting depth, the size
// the document would have once every alias is expanded (a recursive alias or "billion
// laughs" is refused here, before anything walks the tree), duplicate mapping keys, keys
// that are not plain text, and scalars that are not valid UTF-8.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace spriteforge {

struct YamlLimits {
  int max_depth = 32;                   // nested mappings and lists
  size_t max_nodes = 1'000'000;         // after alias expansion
  size_t max_scalar_bytes = 1 << 20;    // text of every scalar, after alias expansion
};

// InvalidArgument "file:line: problem" for the first problem, OK otherwise.
absl::Status CheckYamlShape(const std::string& text, const std::string& file, const YamlLimits& limits = {});

}  // namespace spriteforge
