// The web page's static files, compiled into the coordinator (cmake/embed_files.cmake
// generates their definitions from coordinator/web/), so it serves them without files
// on disk or a network.
#pragma once

#include <cstddef>
#include <string>

namespace spriteforge::coordinator::http {

struct WebAsset {
  const char* path;  // as served, e.g. "/app.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

// nullptr when no file is served at `path`.
const WebAsset* FindWebAsset(const std::string& path);

}  // namespace spriteforge::coordinator::http
