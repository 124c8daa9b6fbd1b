// The files of the worker's model folders (--lora-dir, --controlnet-dir, --ip-adapter-dir)
// and its --model as Register lists them: by the name manifests use, with their size and
// SHA-256.
//
// Hashing a folder of multi-GB files takes seconds per file, so the hashes are remembered in
// a small file of the worker's --cache-dir (FileHashes, "file-hashes.tsv"), keyed by the
// file's path, size and modification time: a later start (or reconnect) with the same files
// reads none of them again, and a file replaced in place (other size or time) is hashed
// anew. The worker warms it on a thread of its own while the model loads, so a first start
// on a large folder costs little more than the load; a file added to a folder later is
// hashed when the next connection lists it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

// SHA-256 of files, remembered by path, size and modification time in a cache file.
class FileHashes {
 public:
  // Reads what `cache_file` remembers (a missing or unreadable file remembers nothing);
  // empty: nothing is remembered beyond this object.
  explicit FileHashes(std::string cache_file);
  FileHashes(const FileHashes&) = delete;
  FileHashes& operator=(const FileHashes&) = delete;

  // The hex SHA-256 of the file at `path`: the remembered one while its size and
  // modification time are unchanged, else read from the file (and remembered).
  absl::StatusOr<std::string> Of(const std::string& path);
  // Writes the remembered hashes to the cache file (atomically) when they changed since
  // it was read, forgetting files that are gone.
  absl::Status Save();

  int hashed() const;  // files read and hashed by this object (not found in the cache)
  // From now on Of reads no file: one not remembered is UNAVAILABLE (a start that failed).
  void StopReading() { stop_ = true; }

 private:
  struct Known {
    uint64_t size = 0;
    int64_t mtime = 0;
    std::string sha256;
  };
  std::string cache_file_;
  mutable std::mutex mu_;
  std::map<std::string, Known> known_;  // by path
  bool changed_ = false;
  int hashed_ = 0;
  std::atomic<bool> stop_{false};
};

// The cache file FileHashes keeps in a worker's cache folder.
std::string FileHashesPath(const std::string& cache_dir);

// The .safetensors files of `dir`, as Register lists them (name = stem, size, and with
// `hashes` their SHA-256).
std::vector<v1::LoraFile> ListLoraFolder(const std::string& dir, FileHashes* hashes = nullptr);
// The diffusers model folders of `dir` (those with a config.json), as Register lists them
// (name = folder, size = its .safetensors files; with `hashes`, the SHA-256 of the weights
// file the engine loads from it: the first of diffusion_pytorch_model.safetensors,
// model.safetensors and their .fp16 variants; none when the folder has none of them).
std::vector<v1::LoraFile> ListModelFolders(const std::string& dir, FileHashes* hashes = nullptr);

// The model the worker serves from `model_path` (its --model), as Register.model_files lists
// it under `name`: with `hashes`, the SHA-256 of
//   - a single-file checkpoint: the file (size: the file's);
//   - a diffusers folder: its UNet's weights file, the first of unet/ diffusion_pytorch_model
//     .safetensors, model.safetensors and their .fp16 variants, as the engine loads it (size:
//     all the folder's .safetensors files); none when unet/ has none of them;
//   - builtin:* (random weights) or a path that is neither: none (size 0).
v1::LoraFile ModelFile(const std::string& name, const std::string& model_path, FileHashes* hashes = nullptr);

// Every listing Register makes of the worker's folders and of its model (`model_path`; empty:
// none), for their hashes to be read once ahead of the first connection (the lists
// themselves are dropped).
void HashModelFolders(const std::vector<std::string>& dirs, FileHashes* hashes, const std::string& model_path = "");

}  // namespace spriteforge::worker
