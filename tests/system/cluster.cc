#include "tests/system/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace spriteforge::testing {
namespace {

// Cross builds start the programs under test through their emulator ("qemu-aarch64-static -L
// SYSROOT"): the host cannot run them directly.
const std::vector<std::string>& Emulator() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> out;
#ifdef SPRITEFORGE_TEST_EMULATOR
    std::istringstream in(SPRITEFORGE_TEST_EMULATOR);
    for (std::string word; in >> word;) out.push_back(word);
#endif
    return out;
  }();
  return words;
}

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const std::string& a : Emulator()) out.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WaitForText(const std::string& path, const std::string& text, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (Slurp(path).find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_path) {
  auto args = Argv(argv);
  pid_ = fork();
  if (pid_ == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() {
  if (Running()) Kill(SIGKILL);
  Wait();
}

void Process::Kill(int signal) {
  if (!reaped_) kill(pid_, signal);
}

bool Process::Running() {
  if (reaped_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

int Process::WaitFor(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (Running()) {
    if (std::chrono::steady_clock::now() > end) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Wait();
}

int Process::Wait() {
  if (!reaped_) {
    waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  static int counter = 0;
  const std::string base = std::filesystem::temp_directory_path() /
                           ("sf_cmd_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  auto args = Argv(argv);
  // Only async-signal-safe calls between fork and exec: nothing may allocate there.
  const std::string out_path = base + ".out", err_path = base + ".err";
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), Slurp(base + ".out"),
                  Slurp(base + ".err")};
  std::filesystem::remove(base + ".out");
  std::filesystem::remove(base + ".err");
  return r;
}

std::string GoldenModel() {
  const char* dir = std::getenv("SPRITEFORGE_GOLDEN");
  if (!dir || !std::filesystem::exists(std::string(dir) + "/tiny-sdxl.safetensors")) return "";
  return dir;
}

std::string TempDir(const std::string& name) {
  const std::string dir = std::filesystem::temp_directory_path() / ("spriteforge_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

Cluster::Cluster(std::string dir) : dir_(std::move(dir)) {}

Cluster::~Cluster() {
  workers_.clear();
  coordinator_.reset();
}

void Cluster::StartCoordinator(int port, const std::vector<std::string>& extra) {
  const std::string ready = dir_ + "/ready.json";
  std::filesystem::remove(ready);
  std::vector<std::string> argv = {SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:" + std::to_string(port),
                                   "--db", dir_ + "/spriteforge.db", "--output", output(), "--http", "127.0.0.1:0",
                                   "--ready-file", ready, "--lease-seconds", "5"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  coordinator_ = std::make_unique<Process>(argv, dir_ + "/coordinator." + std::to_string(coordinator_starts_++) + ".log");
  for (int i = 0; i < 300 && !std::filesystem::exists(ready); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(std::filesystem::exists(ready)) << "coordinator did not start; see " << dir_;
  const auto j = nlohmann::json::parse(Slurp(ready));
  grpc_address_ = j["grpc"];
  http_address_ = j["http"];
  worker_address_ = j.value("worker_grpc", "");
  port_ = std::stoi(grpc_address_.substr(grpc_address_.rfind(':') + 1));
  auto channel = DialCoordinator(grpc_address_, security_, grpc::ChannelArguments());
  ASSERT_TRUE(channel.ok()) << channel.status();
  stub_ = v1::SpriteForge::NewStub(*channel);
}

std::string Cluster::coordinator_log() const {
  return dir_ + "/coordinator." + std::to_string(coordinator_starts_ - 1) + ".log";
}

Process* Cluster::worker(const std::string& id) {
  Process* latest = nullptr;  // a restarted worker's newest process
  for (auto& [wid, p] : workers_) {
    if (wid == id) latest = p.get();
  }
  return latest;
}

void Cluster::KillCoordinator() {
  coordinator_->Kill(SIGKILL);
  coordinator_->Wait();
}

void Cluster::StartWorker(const std::string& id, const std::vector<std::string>& extra) {
  const std::string g = GoldenModel();
  StartWorkerOf(id, {"--model", g + "/tiny-sdxl.safetensors", "--config", g + "/diffusers", "--tokenizer",
                     g + "/tokenizer"}, extra);
}

void Cluster::StartWorkerOf(const std::string& id, const std::vector<std::string>& model,
                            const std::vector<std::string>& extra) {
#ifndef SPRITEFORGE_WORKER_BIN
  FAIL() << "built without the worker (SPRITEFORGE_WITH_ENGINE=OFF)";
#else
  std::vector<std::string> argv = {SPRITEFORGE_WORKER_BIN, "--coordinator", worker_address()};
  argv.insert(argv.end(), model.begin(), model.end());
  argv.insert(argv.end(), {"--model-name", "tiny-sdxl", "--worker-id", id});
  argv.insert(argv.end(), extra.begin(), extra.end());
  workers_.emplace_back(id, std::make_unique<Process>(argv, dir_ + "/worker-" + id + ".log"));
#endif
}

void Cluster::KillWorker(const std::string& id) {
  for (auto& [wid, p] : workers_) {
    if (wid == id) {
      p->Kill(SIGKILL);
      p->Wait();
    }
  }
}

CommandResult Cluster::Client(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {SPRITEFORGE_CLIENT_BIN, "--coordinator", grpc_address_};
  if (!security_.ca_file.empty()) argv.insert(argv.end(), {"--tls-ca", security_.ca_file});
  if (!security_.cert_file.empty()) {
    argv.insert(argv.end(), {"--tls-cert", security_.cert_file, "--tls-key", security_.key_file});
  }
  if (!security_.token.empty()) argv.insert(argv.end(), {"--token", security_.token});
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

v1::SpriteForge::Stub& Cluster::Stub() { return *stub_; }

v1::GetJobResponse Cluster::Job(const std::string& id, bool items) {
  v1::GetJobRequest request;
  request.set_job_id(id);
  request.set_include_items(items);
  v1::GetJobResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  stub_->GetJob(&ctx, request, &response);
  return response;
}

v1::Job Cluster::WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  v1::Job job;
  while (std::chrono::steady_clock::now() < end) {
    job = Job(id).job();
    if (pred(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return job;
}

std::string Cluster::HttpGet(const std::string& path) const {
  const size_t colon = http_address_.rfind(':');
  httplib::Client client(http_address_.substr(0, colon), std::stoi(http_address_.substr(colon + 1)));
  auto res = client.Get(path.c_str());
  return res ? res->body : "";
}

}  // namespace spriteforge::testing
