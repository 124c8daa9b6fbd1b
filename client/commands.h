// The client's subcommands. Each takes its arguments after the subcommand name and
// returns the process exit code: 0 success, 1 failure, 2 bad usage.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::client {

using Args = std::vector<std::string>;
using Stub = v1::SpriteForge::Stub;

int Submit(Stub& stub, const Args& args);
int Watch(Stub& stub, const Args& args);
int Status(Stub& stub, const Args& args);
int Cancel(Stub& stub, const Args& args);
int Workers(Stub& stub, const Args& args);
int Results(Stub& stub, const Args& args);

// Follows a job's events until it finishes; returns 0 when every item is done.
int WatchJob(Stub& stub, const std::string& job_id, bool quiet);

}  // namespace spriteforge::client
