// The client's subcommands against the coordinator. Each returns the process exit code:
// 0 success, 1 failure; failures print one line on stderr.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::client {

using Stub = v1::SpriteForge::Stub;

struct WatchArgs {
  std::string job_id;
  bool quiet = false;
  // How long a watch keeps reconnecting to a coordinator that went away.
  int reconnect_seconds = 300;
  // With several coordinators (one leads, the others stand by): the stub of the one that
  // leads now, asked again whenever the stream is lost. Unset: the same stub throughout.
  std::function<Stub*()> leader;
};

struct SubmitArgs {
  std::string manifest, idempotency_key, model;
  // ComfyUI workflows only: "6.seed=7" input settings, "ckpt.safetensors=model" checkpoint
  // names, and the images each SaveImage makes (0: the workflow's own).
  std::vector<std::string> settings, model_maps;
  int count = 0;
  bool wait = false;
  WatchArgs watch;  // with --wait
};

struct StatusArgs {
  std::string job_id;  // empty: every job
  bool json = false;
};

struct ResultsArgs {
  std::string job_id, out;
  bool renders = false;
};

// Waits up to `seconds` while nothing listens at `address` (a coordinator that is starting),
// saying so on stderr after a second. Returns at once for a listener or an address it cannot probe.
void WaitForListener(const std::string& address, int seconds);

int Submit(Stub& stub, const SubmitArgs& args);
int Watch(Stub& stub, const WatchArgs& args);
int Status(Stub& stub, const StatusArgs& args);
int Cancel(Stub& stub, const std::string& job_id);
int Workers(Stub& stub, bool json);
int Results(Stub& stub, const ResultsArgs& args);

}  // namespace spriteforge::client
