// A result folder that can really run out of space, for the soak's full-disk phase: a
// small tmpfs mounted over a folder in a mount namespace of this test process (the
// processes it starts inherit it; the host never sees the mount). Root mounts it in a
// mount namespace of its own; anyone else through an unprivileged user namespace (as
// `unshare --user --map-root-user --mount`). Call Mount before the process has threads.
#pragma once

#include <cstdint>
#include <string>

namespace spriteforge::testing {

class SmallDisk {
 public:
  // Mounts a tmpfs of `bytes` over the existing folder `path`. False, with why() saying
  // what was refused, when neither way is allowed here.
  bool Mount(const std::string& path, uint64_t bytes);
  const std::string& how() const { return how_; }  // e.g. "tmpfs in a user namespace"
  const std::string& why() const { return why_; }

  // Writes a filler file until the folder has no space left; returns the bytes written.
  uint64_t Fill();
  // Deletes the filler.
  void Free();
  uint64_t FreeBytes() const;

 private:
  std::string path_, how_, why_;
};

}  // namespace spriteforge::testing
