#include "tests/soak/small_disk.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace spriteforge::testing {
namespace {

bool WriteProc(const std::string& file, const std::string& text) {
  std::ofstream out(file);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Private propagation first, so the tmpfs never shows up outside this namespace.
bool MountTmpfs(const std::string& path, uint64_t bytes, std::string* why) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    *why = Errno("making / private");
    return false;
  }
  const std::string options = "size=" + std::to_string(bytes);
  if (mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    *why = Errno("mount -t tmpfs");
    return false;
  }
  return true;
}

}  // namespace

bool SmallDisk::Mount(const std::string& path, uint64_t bytes) {
  path_ = path;
  std::string root_why, user_why;
  if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0) {
    if (MountTmpfs(path, bytes, &root_why)) {
      how_ = "tmpfs in a mount namespace";
      return true;
    }
  } else {
    root_why = geteuid() == 0 ? Errno("unshare(CLONE_NEWNS)") : "not root";
  }
  // As `unshare --user --map-root-user --mount`: this user becomes root of a new user
  // namespace, which may mount a tmpfs in its own mount namespace.
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    user_why = Errno("unshare(CLONE_NEWUSER | CLONE_NEWNS)");
  } else if (!WriteProc("/proc/self/setgroups", "deny") ||
             !WriteProc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
             !WriteProc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n")) {
    user_why = "cannot write the user namespace's uid_map/gid_map";
  } else if (MountTmpfs(path, bytes, &user_why)) {
    how_ = "tmpfs in an unprivileged user namespace";
    return true;
  }
  why_ = "as root: " + root_why + "; in a user namespace: " + user_why;
  return false;
}

uint64_t SmallDisk::Fill() {
  const std::string filler = path_ + "/.filler";
  const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 0;
  const std::vector<char> block(64 << 10, 'x');
  uint64_t written = 0;
  // Down to single bytes, so not even a small sidecar fits afterwards.
  for (size_t size = block.size(); size > 0; size /= 2) {
    ssize_t n;
    while ((n = write(fd, block.data(), size)) > 0) written += static_cast<uint64_t>(n);
  }
  close(fd);
  return written;
}

void SmallDisk::Free() { unlink((path_ + "/.filler").c_str()); }

uint64_t SmallDisk::FreeBytes() const {
  struct statvfs st {};
  if (statvfs(path_.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace spriteforge::testing
