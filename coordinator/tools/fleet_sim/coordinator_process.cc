#include "coordinator/tools/fleet_sim/coordinator_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace spriteforge::fleet {

CoordinatorProcess& CoordinatorProcess::operator=(CoordinatorProcess&& o) noexcept {
  pid_ = o.pid_;
  dir_ = std::move(o.dir_);
  db_ = std::move(o.db_);
  client_address_ = std::move(o.client_address_);
  worker_address_ = std::move(o.worker_address_);
  o.pid_ = -1;
  return *this;
}

CoordinatorProcess::~CoordinatorProcess() {
  if (pid_ > 0) Stop();
}

absl::StatusOr<CoordinatorProcess> CoordinatorProcess::Start(const std::string& binary, const std::string& dir,
                                                             const std::vector<std::string>& extra,
                                                             const std::string& db) {
  if (access(binary.c_str(), X_OK) != 0) return absl::NotFoundError(absl::StrCat("no coordinator program at ", binary));
  CoordinatorProcess p;
  p.dir_ = dir;
  p.db_ = db;
  const std::string ready = dir + "/ready.json";
  unlink(ready.c_str());
  std::vector<std::string> argv = {binary,           "--listen",  "127.0.0.1:0", "--worker-listen", "127.0.0.1:0",
                                   "--http",         "127.0.0.1:0", "--db",      p.db_path(),     "--output",
                                   dir + "/out",     "--ready-file", ready};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const std::string log = dir + "/coordinator.log";
  p.pid_ = fork();
  if (p.pid_ < 0) return absl::InternalError("fork failed");
  if (p.pid_ == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(p.pid_, &status, WNOHANG) == p.pid_) {
      p.pid_ = -1;
      return absl::FailedPreconditionError(absl::StrCat("the coordinator exited at start; see ", log));
    }
    std::ifstream in(ready);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.contains("grpc") && j.contains("worker_grpc")) {
      p.client_address_ = j["grpc"].get<std::string>();
      p.worker_address_ = j["worker_grpc"].get<std::string>();
      return p;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("the coordinator did not serve within 60 s; see ", log));
}

absl::StatusOr<ProcessSample> CoordinatorProcess::Sample() const {
  ProcessSample s;
  std::ifstream stat(absl::StrCat("/proc/", pid_, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return absl::NotFoundError(absl::StrCat("no process ", pid_));
  // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 13) return absl::InternalError("unexpected /proc stat line");
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / tick;
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  while (std::getline(status, line)) {
    auto kb = [&](const char* key) { return std::stod(line.substr(std::string(key).size())) / 1024.0; };
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mb = kb("VmRSS:");
    if (line.rfind("VmHWM:", 0) == 0) s.peak_rss_mb = kb("VmHWM:");
  }
  return s;
}

int CoordinatorProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 300; ++i) {  // 30 s, then it is killed
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return 128 + SIGKILL;
}

uint64_t CoordinatorProcess::DbBytes() const {
  uint64_t total = 0;
  if (!db_.empty()) return 0;
  for (const char* suffix : {"", "-wal"}) {
    struct stat st;
    if (stat((db_path() + suffix).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

}  // namespace spriteforge::fleet
