#include "coordinator/core/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

absl::StatusOr<std::string> ReadProc(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Seconds since the epoch at which the machine booted (/proc/stat's btime).
absl::StatusOr<double> BootTime() {
  ASSIGN_OR_RETURN(const std::string stat, ReadProc("/proc/stat"));
  std::istringstream lines(stat);
  std::string key;
  while (lines >> key) {
    if (key == "btime") {
      double t = 0;
      if (lines >> t) return t;
      break;
    }
    lines.ignore(1 << 20, '\n');
  }
  return absl::UnavailableError("/proc/stat has no btime");
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats() {
  ASSIGN_OR_RETURN(const std::string stat, ReadProc("/proc/self/stat"));
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::UnavailableError("cannot parse /proc/self/stat");
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  // Field 3 (state) is the first here; utime and stime are fields 14 and 15, starttime 22,
  // vsize 23, rss (pages) 24.
  double utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  for (int n = 3; n <= 24 && fields >> field; ++n) {
    if (n == 14) utime = std::stod(field);
    if (n == 15) stime = std::stod(field);
    if (n == 22) start_ticks = std::stod(field);
    if (n == 23) vsize = std::stod(field);
    if (n == 24) rss_pages = std::stod(field);
  }
  if (!fields) return absl::UnavailableError("/proc/self/stat is shorter than expected");
  ASSIGN_OR_RETURN(auto boot, BootTime());

  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcessStats s;
  s.cpu_seconds = (utime + stime) / ticks;
  s.start_time_seconds = boot + start_ticks / ticks;
  s.virtual_bytes = static_cast<uint64_t>(vsize);
  s.resident_bytes = static_cast<uint64_t>(rss_pages) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++s.open_fds;
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list /proc/self/fd: ", ec.message()));
  --s.open_fds;  // the listing's own descriptor
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = static_cast<int64_t>(limit.rlim_cur);
  return s;
}

}  // namespace spriteforge::coordinator
