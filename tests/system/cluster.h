// Real processes on 127.0.0.1 for the service tests: a coordinator, workers running the
// engine on the golden tiny model on the CPU, and the spriteforge client, each a child
// process with its log in the test's temporary folder.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/rpc/channel.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::testing {

class Process {
 public:
  // Starts argv[0] with stdout and stderr to `log_path`.
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();  // SIGKILL if still running
  void Kill(int signal);
  int Wait();  // exit status (128+signal when killed)
  // The exit status if the process ends within `seconds`, else -1 (still running).
  int WaitFor(double seconds);
  bool Running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv);

std::string Slurp(const std::string& path);
// Polls until the file contains `text` or `seconds` pass.
bool WaitForText(const std::string& path, const std::string& text, double seconds);

class Cluster {
 public:
  explicit Cluster(std::string dir);
  ~Cluster();

  // port 0: any free port. Waits until the coordinator serves. `extra`: more flags.
  void StartCoordinator(int port = 0, const std::vector<std::string>& extra = {});
  void KillCoordinator();
  void StartWorker(const std::string& id, const std::vector<std::string>& extra = {});
  // A worker of the tiny model loaded with these flags (--model, --config, --tokenizer).
  void StartWorkerOf(const std::string& id, const std::vector<std::string>& model,
                     const std::vector<std::string>& extra = {});
  void KillWorker(const std::string& id);

  // How the client, the stub and (with their own flags) workers reach a coordinator with
  // TLS or tokens; set before StartCoordinator.
  void SetClientSecurity(const ChannelSecurity& security) { security_ = security; }
  // The spriteforge client against this coordinator, with the client security's flags.
  CommandResult Client(const std::vector<std::string>& args) const;
  v1::SpriteForge::Stub& Stub();
  v1::GetJobResponse Job(const std::string& id, bool items = false);
  // Polls until `pred(job)` holds or `seconds` pass; returns the last job seen.
  v1::Job WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& pred, double seconds = 120);
  std::string HttpGet(const std::string& path) const;

  const std::string& dir() const { return dir_; }
  // The log of the coordinator's latest start.
  std::string coordinator_log() const;
  pid_t coordinator_pid() const { return coordinator_ ? coordinator_->pid() : -1; }
  std::string http_address() const { return http_address_; }
  // Where workers connect: the worker port when the coordinator has one.
  std::string worker_address() const { return worker_address_.empty() ? grpc_address_ : worker_address_; }
  Process* worker(const std::string& id);
  std::string output() const { return dir_ + "/out"; }
  const std::string& address() const { return grpc_address_; }
  int port() const { return port_; }

 private:
  std::string dir_;
  std::string grpc_address_, http_address_, worker_address_;
  ChannelSecurity security_;
  int port_ = 0;
  int coordinator_starts_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> workers_;
  std::unique_ptr<v1::SpriteForge::Stub> stub_;
};

// Golden tiny model files; empty when SPRITEFORGE_GOLDEN is missing.
std::string GoldenModel();
std::string TempDir(const std::string& name);
int FreePort();

}  // namespace spriteforge::testing
